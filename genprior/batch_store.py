"""The output folder of a batch run: one committed sub-folder per input, ``failures.jsonl`` and ``summary.csv``.

Layout of ``OUT``::

    OUT/<name>/...            one input's result, committed atomically (written as OUT/.<name>.partial, renamed)
    OUT/<name>/batch.json     written last inside it: status, seconds, metrics; its presence means "done"
    OUT/failures.jsonl        one JSON object per input that failed: {"path", "name", "reason"[, "traceback"]}
    OUT/summary.csv           one row per input: name, input, status (ok / failed / pending), seconds, metrics
    OUT/.batch.lock           held while a run writes here (a second run on the same folder is refused)

Only the driver process writes here; workers send their files back, so a kill at any point leaves complete
folders and, at worst, a ``.partial`` one that the next run removes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from .errors import GenpriorError
from .io.atomic import atomic_path, umask

DONE_FILE = "batch.json"
FAILURES = "failures.jsonl"
SUMMARY = "summary.csv"
_MULTI_SUFFIXES = (".nii.gz",)


def output_name(path: Path) -> str:
    """The result folder's name for an input: its file name without the suffix (``scan.nii.gz`` -> ``scan``)."""
    for suffix in _MULTI_SUFFIXES:
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name if path.is_dir() else path.stem


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"restored": {"psnr": 20.1}} -> {"restored.psnr": 20.1}."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class OutputFolder:
    """``OUT`` for a list of inputs: names checked, lock taken, leftovers of an interrupted run removed."""

    def __init__(self, root: str | os.PathLike, inputs: list[Path], *, overwrite: bool = False) -> None:
        self.root = Path(root)
        self.names = [output_name(p) for p in inputs]
        seen: dict[str, Path] = {}
        for path, name in zip(inputs, self.names):
            if name in seen:
                raise GenpriorError(f"{seen[name]} and {path} would both write to {self.root / name}; rename one")
            seen[name] = path
        foreign = [self.root / n for n in self.names
                   if (self.root / n).exists() and not (self.root / n / DONE_FILE).is_file()]
        if foreign and not overwrite:
            raise GenpriorError(f"{foreign[0]} exists and is not a finished batch result; pass --overwrite to "
                                "replace it, or choose another output folder")
        self.overwrite, self._created = overwrite, not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.root / ".batch.lock")
        self.remove_partials()
        self.failures: dict[str, dict[str, Any]] = _read_failures(self.root / FAILURES)

    def close(self) -> None:
        """Release the lock; a folder this run created and left empty is removed again."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._created and {p.name for p in self.root.iterdir()} <= {".batch.lock"}:
            shutil.rmtree(self.root, ignore_errors=True)

    def done(self, name: str) -> dict[str, Any] | None:
        """The record of a finished result (None when not finished, or when overwriting)."""
        if self.overwrite:
            return None
        try:
            return json.loads((self.root / name / DONE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def remove_partials(self) -> None:
        for entry in self.root.glob(".*.partial"):
            shutil.rmtree(entry, ignore_errors=True)
        for entry in self.root.glob(".*.old"):
            shutil.rmtree(entry, ignore_errors=True)

    def commit(self, name: str, files: dict[str, bytes], record: dict[str, Any]) -> Path:
        """Write ``files`` (relative path -> bytes) and ``batch.json`` as OUT/<name>, all at once."""
        final, tmp, old = self.root / name, self.root / f".{name}.partial", self.root / f".{name}.old"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for rel, data in files.items():
            target = tmp / rel
            if tmp.resolve() not in target.resolve().parents:
                raise GenpriorError(f"{name}: the job wrote {rel!r}, outside its folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (tmp / DONE_FILE).write_text(json.dumps(record, indent=2, default=str))
        os.chmod(tmp, 0o777 & ~umask())
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def set_failure(self, path: Path, name: str, record: dict[str, Any] | None) -> None:
        """Record (or, with None, clear) the failure of one input and rewrite failures.jsonl atomically."""
        key = str(path)
        if record is None and key not in self.failures:
            return
        if record is None:
            del self.failures[key]
        else:
            self.failures[key] = {"path": key, "name": name, "reason": record.get("reason", "")}
            if record.get("traceback"):
                self.failures[key]["traceback"] = record["traceback"]
        text = "".join(json.dumps(f) + "\n" for f in self.failures.values())
        if not text:
            (self.root / FAILURES).unlink(missing_ok=True)
            return
        with atomic_path(self.root / FAILURES, overwrite=True) as tmp:
            tmp.write_text(text)

    def write_summary(self, rows: Iterable[dict[str, Any]]) -> Path:
        """summary.csv: name, input, status, seconds, every metric column (sorted), reason."""
        rows = list(rows)
        metrics = sorted({k for row in rows for k in flatten(row.get("metrics") or {})})
        fields = ["name", "input", "status", "seconds", *metrics, "reason"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **flatten(row.get("metrics") or {})})
        with atomic_path(self.root / SUMMARY, overwrite=True) as tmp:
            tmp.write_text(buf.getvalue())
        return self.root / SUMMARY


def _read_failures(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                out[rec["path"]] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return out


def _take_lock(path: Path):  # noqa: ANN202
    """An exclusive lock on ``path`` held while the returned file stays open (None where flock is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return None
    handle = open(path, "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise GenpriorError(f"{path.parent}: another batch run is writing here (its lock is held)") from None
    return handle
