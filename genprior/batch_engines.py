"""Where a batch job runs: ``local`` worker processes (spawned, no server) or a ``ray`` cluster.

Both engines hold ``workers`` long-lived workers; each calls ``job.setup()`` once (weights loaded once per
worker), then runs one input at a time through `execute` and sends back a record and the files written. An
engine's ``next_done()`` returns ``(key, outcome)``, with outcome None when the worker died on that input (a
crash or the out-of-memory killer); the dead worker is replaced.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from .errors import GenpriorError

Outcome = tuple[dict[str, Any], dict[str, bytes]]  # (record, files: relative path -> bytes)


def execute(job: Any, input_path: str) -> Outcome:
    """Run ``job.run_one`` on one input in a fresh temporary folder; never raises for the input's faults.

    record: {"status": "ok", "metrics", "warnings", "seconds"} or {"status": "failed", "reason"[, "traceback"],
    "seconds"}; a GenpriorError's message is the reason as it is, other exceptions add their type and traceback.
    """
    tmp = Path(tempfile.mkdtemp(prefix="genprior-batch-"))
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metrics = job.run_one(Path(input_path), tmp)
        metrics = {} if metrics is None else metrics
        if not isinstance(metrics, dict):
            raise TypeError(f"run_one returned {type(metrics).__name__}, not a dict of metrics")
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(tmp.rglob("*")) if p.is_file()}
        record: dict[str, Any] = {"status": "ok", "metrics": metrics,
                                  "warnings": [str(w.message) for w in caught]}
    except Exception as exc:  # noqa: BLE001 - the input failed; the batch goes on
        files = {}
        if isinstance(exc, GenpriorError):
            record = {"status": "failed", "reason": str(exc)}
        else:
            record = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=8)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record, files


def _setup(job: Any, threads: int) -> tuple[str | None, list[str]]:
    """Limit torch's threads and run ``job.setup()``: (the failure as text or None, the warnings it gave)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import torch

            torch.set_num_threads(threads)
            job.setup()
        except Exception as exc:  # noqa: BLE001
            failure = f"{exc}" if isinstance(exc, GenpriorError) else f"{type(exc).__name__}: {exc}"
            return failure, []
    return None, list(dict.fromkeys(str(w.message) for w in caught))


def _local_worker(conn: Any, job: Any, threads: int) -> None:
    """A spawned worker: setup once, then (key, path) in -> (key, outcome) out until None or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it stops the workers
    conn.send(_setup(job, threads))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, path = msg
        conn.send((key, execute(job, path)))


def _setup_failed(reason: str) -> GenpriorError:
    return GenpriorError(f"a batch worker could not start: {reason}")


class LocalEngine:
    """``workers`` spawned processes on this machine, one pipe each (so a dead worker's input is known)."""

    name = "local"

    def __init__(self, job: Any, workers: int, *, threads: int | None = None) -> None:
        self.job, self.slots = job, workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._ctx = mp.get_context("spawn")
        self._workers: list[tuple[Any, Any]] = []  # (process, connection)
        self._busy: dict[int, int] = {}  # worker index -> key
        self.setup_warnings: list[str] = []  # what the workers' setup() warned, each once
        try:
            for _ in range(workers):
                self._workers.append(self._spawn())
            for i in range(workers):
                self._wait_ready(i)
        except BaseException:
            self.close(kill=True)
            raise

    def _spawn(self) -> tuple[Any, Any]:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_local_worker, args=(child, self.job, self.threads), daemon=True)
        proc.start()
        child.close()
        return proc, parent

    def _wait_ready(self, i: int) -> None:
        proc, conn = self._workers[i]
        try:
            failure, caught = conn.recv()
        except (EOFError, OSError):
            raise _setup_failed(f"worker process exited with code {proc.join(5) or proc.exitcode}") from None
        if failure is not None:
            raise _setup_failed(failure)
        self.setup_warnings.extend(w for w in caught if w not in self.setup_warnings)

    def submit(self, key: int, input_path: str) -> None:
        i = next(i for i in range(len(self._workers)) if i not in self._busy)
        self._workers[i][1].send((key, input_path))
        self._busy[i] = key

    def next_done(self) -> tuple[int, Outcome | None]:
        while True:
            index = {}
            for i in self._busy:
                proc, conn = self._workers[i]
                index[conn], index[proc.sentinel] = i, i
            for ready in wait(list(index)):
                i = index[ready]
                proc, conn = self._workers[i]
                try:
                    if conn.poll():
                        key, outcome = conn.recv()
                        del self._busy[i]
                        return key, outcome
                except Exception:  # noqa: BLE001 - the pipe closed (mid-message): the worker is dying
                    proc.join(1)
                if not proc.is_alive():  # died on its input without a result
                    key = self._busy.pop(i)
                    conn.close()
                    self._workers[i] = self._spawn()
                    self._wait_ready(i)
                    return key, None

    def close(self, *, kill: bool = False) -> None:
        for proc, conn in self._workers:
            if kill:
                proc.terminate()
            else:
                try:
                    conn.send(None)
                except (OSError, ValueError):
                    pass
        for proc, conn in self._workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self._workers, self._busy = [], {}


class _RayWorker:
    """One Ray actor: setup once, then `execute` per input."""

    def __init__(self, job: Any, threads: int) -> None:
        self.job, self.setup = job, _setup(job, threads)

    def ready(self) -> tuple[str | None, list[str]]:
        return self.setup

    def run(self, input_path: str) -> Outcome:
        return execute(self.job, input_path)


class RayEngine:
    """``workers`` Ray actors (1 CPU each, ``gpus`` each); joins ``address`` or starts Ray on this machine.

    Inputs must be readable at the same path on every node; results come back to the driver, which writes them.
    """

    name = "ray"

    def __init__(self, job: Any, workers: int, *, address: str | None = None, gpus: float = 0.0,
                 threads: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise GenpriorError("--engine ray needs Ray: pip install 'genprior[ray]'") from None
        self._ray, self.job, self.slots, self.threads = ray, job, workers, threads
        self._started = not ray.is_initialized()
        if self._started:  # a Ray on this machine sees this process's imports, as spawned local workers do
            kw: dict[str, Any] = {} if address else {
                "num_cpus": workers, "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, sys.path))}}}
            try:
                ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=False, **kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise GenpriorError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from None
        self._actor = ray.remote(num_cpus=1, num_gpus=gpus)(_RayWorker)
        self._free: list[Any] = []
        self._busy: dict[Any, tuple[int, Any]] = {}  # object ref -> (key, actor)
        self.setup_warnings: list[str] = []
        try:
            actors = [self._actor.remote(job, threads) for _ in range(workers)]
            self._ready(actors)
            self._free = actors
        except BaseException:
            self.close(kill=True)
            raise

    def _ready(self, actors: list[Any]) -> None:
        """Wait for the actors' setup; its failure, or a Ray error (e.g. the job's module missing on a node),
        becomes one line."""
        try:
            results = self._ray.get([a.ready.remote() for a in actors])
        except self._ray.exceptions.RayError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            hint = ("; is genprior, and the job's module, installed on every node?"
                    if "ModuleNotFoundError" in str(exc) else "")
            raise _setup_failed(f"{type(exc).__name__}: {lines[-1] if lines else exc}{hint}") from None
        for failure, caught in results:
            if failure is not None:
                raise _setup_failed(failure)
            self.setup_warnings.extend(w for w in caught if w not in self.setup_warnings)

    def submit(self, key: int, input_path: str) -> None:
        actor = self._free.pop()
        self._busy[actor.run.remote(input_path)] = (key, actor)

    def next_done(self) -> tuple[int, Outcome | None]:
        (ref,), _ = self._ray.wait(list(self._busy), num_returns=1)
        key, actor = self._busy.pop(ref)
        try:
            outcome = self._ray.get(ref)
        except self._ray.exceptions.RayActorError:
            self._ray.kill(actor)
            replacement = self._actor.remote(self.job, self.threads)
            self._ready([replacement])
            self._free.append(replacement)
            return key, None
        self._free.append(actor)
        return key, outcome

    def close(self, *, kill: bool = False) -> None:
        for actor in self._free + [a for _, a in self._busy.values()]:
            self._ray.kill(actor)
        self._free, self._busy = [], {}
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
