"""Restore a whole folder: many inputs, N workers, resumable, failures listed, a summary table.

A *job* is a picklable object with two methods (see `BatchJob`): ``setup()``, called once in each worker (load
the generator and perceptual weights there), and ``run_one(input_path, out_dir) -> dict`` that restores one
input, writes its files into the empty folder ``out_dir`` and returns its metrics (``{}`` when there is no
truth). `run_batch` runs a job over inputs on an engine (``local``: spawned worker processes on this machine,
no server; ``ray``: Ray actors on a cluster or a Ray started here) and writes into ``out``:

* ``out/<name>/`` per input (``name``: the file name without its suffix), committed atomically, with a
  ``batch.json`` (status, seconds, metrics, warnings). An input whose folder is complete is skipped on the next
  run, so a run killed at any point resumes without redoing finished inputs.
* ``out/failures.jsonl``: one JSON object (path, name, reason) per input that failed; the others go on.
  Failed inputs are tried again on the next run (``retry_failed``).
* ``out/summary.csv``: one row per input (name, input, status ok / failed / pending, seconds, metrics),
  written every ``summary_every`` inputs and at the end, also after Ctrl-C.

Cost: about ``start-up + per-input seconds x inputs / workers`` (see benchmarks/results/batch.md).
"""

from __future__ import annotations

import math
import pickle
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from .batch_engines import LocalEngine, Outcome, RayEngine
from .batch_store import OutputFolder
from .errors import GenpriorError
from .progress import notice, progress

ENGINES = ("local", "ray")
_SHOWN_WARNINGS = 5


class BatchJob(Protocol):
    """What `run_batch` runs: picklable (sent to each worker before ``setup``)."""

    def setup(self) -> None:
        """Load what every input needs (generator, perceptual weights); called once per worker."""

    def run_one(self, input_path: Path, out_dir: Path) -> dict[str, Any] | None:
        """Restore one input into ``out_dir`` (empty, exists); return its metrics; raise on a bad input."""


@dataclass(frozen=True)
class BatchReport:
    """How a `run_batch` ended. ``restored`` counts this run's, ``skipped`` those finished earlier."""

    out: Path
    engine: str
    workers: int
    total: int
    restored: int
    skipped: int
    failed: int
    pending: int
    seconds: float
    startup_seconds: float

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0


def run_batch(job: BatchJob, inputs: Sequence[str | Path], out: str | Path, *, engine: str = "local",
              workers: int = 1, address: str | None = None, gpus_per_worker: float = 0.0,
              threads: int | None = None, overwrite: bool = False, retry_failed: bool = True,
              summary_every: int = 10, max_crashes: int = 2, show_progress: bool = True) -> BatchReport:
    """Run ``job`` on every input with ``workers`` workers of ``engine``; results in ``out`` (see module doc).

    ``threads``: torch threads per local worker (default: CPU cores / workers; Ray workers use 1).
    ``overwrite`` redoes and replaces finished results; ``max_crashes``: deaths of a worker on one input
    before that input is recorded as failed. Ctrl-C stops the workers, leaves only complete folders, writes
    the summary and re-raises KeyboardInterrupt.
    """
    start = time.monotonic()
    inputs = [Path(p) for p in inputs]
    _check(job, inputs, engine, workers, summary_every, max_crashes)
    store = OutputFolder(out, inputs, overwrite=overwrite)
    rows: list[dict[str, Any]] = []
    todo: list[int] = []
    for i, (path, name) in enumerate(zip(inputs, store.names)):
        done = store.done(name)
        rows.append(_row(name, path, done) if done else {"name": name, "input": str(path), "status": "pending"})
        if done:
            continue
        if not retry_failed and str(path) in store.failures:
            rows[i].update(status="failed", reason=store.failures[str(path)]["reason"])
        else:
            todo.append(i)
    skipped = sum(row["status"] == "ok" for row in rows)
    counts, startup, started = Counter(), 0.0, False
    try:
        if not todo:
            notice(f"all {len(inputs)} inputs are done in {store.root}; nothing to restore")
        else:
            notice(f"{len(inputs)} inputs: {skipped} done earlier (skipped), {len(todo)} to restore on "
                   f"{workers} {engine} worker{'s' * (workers > 1)}")
            t0 = time.monotonic()
            runner = (LocalEngine(job, workers, threads=threads) if engine == "local" else
                      RayEngine(job, workers, address=address, gpus=gpus_per_worker))
            startup, started = time.monotonic() - t0, True
            for text in runner.setup_warnings:
                notice(f"warning: {text}")
            try:
                bar = progress(_schedule(runner, inputs, todo, max_crashes), total=len(todo),
                               desc=f"batch ({engine})", unit="inputs", enabled=show_progress)
                for key, (record, files) in bar:
                    _finish(store, inputs[key], store.names[key], record, files, rows, key, counts, engine)
                    if counts["failed"]:
                        bar.set_postfix(failed=counts["failed"])
                    if (counts["ok"] + counts["failed"]) % summary_every == 0:
                        store.write_summary(rows)
            except BaseException as exc:  # Ctrl-C, or the disk / cluster failed: stop the workers first
                runner.close(kill=True)
                store.remove_partials()
                if isinstance(exc, KeyboardInterrupt):
                    notice(f"interrupted: {counts['ok']} restored in this run, "
                           f"{sum(r['status'] == 'pending' for r in rows)} left; run the same command again to resume")
                raise
            runner.close()
    finally:
        if started or not todo:
            store.write_summary(rows)
        store.close()
    return BatchReport(out=store.root, engine=engine, workers=workers, total=len(inputs), restored=counts["ok"],
                       skipped=skipped, failed=sum(r["status"] == "failed" for r in rows),
                       pending=sum(r["status"] == "pending" for r in rows),
                       seconds=round(time.monotonic() - start, 3), startup_seconds=round(startup, 3))


def _check(job: Any, inputs: list[Path], engine: str, workers: int, summary_every: int, max_crashes: int) -> None:
    """Refuse bad arguments before any worker starts."""
    if engine not in ENGINES:
        raise GenpriorError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if workers < 1 or summary_every < 1 or max_crashes < 1:
        raise GenpriorError("workers, summary_every and max_crashes must be at least 1")
    if not inputs:
        raise GenpriorError("no inputs to restore")
    missing = [p for p in inputs if not p.exists()]
    if missing:
        raise GenpriorError(f"{missing[0]}: no such file or folder")
    try:
        pickle.dumps(job)
    except Exception as exc:  # noqa: BLE001
        raise GenpriorError(f"the batch job cannot be sent to workers (not picklable: {exc})") from None


def _schedule(engine: Any, inputs: list[Path], todo: list[int], max_crashes: int) -> Iterator[tuple[int, Outcome]]:
    """Keep every worker busy; yield (index, outcome) as inputs finish. A worker death is retried, then failed."""
    queue, crashes, running = deque(todo), Counter(), 0
    while queue or running:
        while queue and running < engine.slots:
            key = queue.popleft()
            engine.submit(key, str(inputs[key]))
            running += 1
        key, outcome = engine.next_done()
        running -= 1
        if outcome is None:
            crashes[key] += 1
            if crashes[key] < max_crashes:
                queue.appendleft(key)
                continue
            outcome = ({"status": "failed", "seconds": None,
                        "reason": f"its worker process died {crashes[key]} times on it (a crash, or out of memory)"},
                       {})
        yield key, outcome


def _finish(store: OutputFolder, path: Path, name: str, record: dict[str, Any], files: dict[str, bytes],
            rows: list[dict[str, Any]], key: int, counts: Counter, engine: str) -> None:
    """Commit one input's outcome: its folder (ok) or its failures.jsonl line; update its summary row."""
    if record["status"] == "ok":
        record = {"input": str(path), **record, "metrics": _plain(record.get("metrics") or {}), "engine": engine}
        try:
            store.commit(name, files, record)
        except GenpriorError as exc:
            record = {"status": "failed", "reason": str(exc), "seconds": record["seconds"]}
    if record["status"] == "ok":
        store.set_failure(path, name, None)
        counts["ok"] += 1
        for text in record.get("warnings", []):
            counts["warnings"] += 1
            if counts["warnings"] <= _SHOWN_WARNINGS:
                notice(f"{name}: warning: {text}")
            elif counts["warnings"] == _SHOWN_WARNINGS + 1:
                notice("further warnings are in each result's batch.json")
    else:
        store.set_failure(path, name, record)
        counts["failed"] += 1
        notice(f"{name}: failed: {record['reason']}")
    rows[key] = _row(name, path, record)


def _row(name: str, path: Path, record: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "input": str(path), "status": record["status"], "seconds": record.get("seconds"),
            "metrics": record.get("metrics") or {}, "reason": record.get("reason", "")}


def _plain(value: Any) -> Any:
    """Metrics as JSON-ready values: nested dicts of floats (tensors and numpy scalars converted)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else str(number)
