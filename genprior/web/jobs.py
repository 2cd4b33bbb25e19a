"""Restoration jobs for the page: one at a time in a background thread, each in its own temp folder.

`JobRunner.submit(model, options, image)` starts a job (or raises `Busy` while one runs); the job loads the
generator (once per model, cached), builds the method the way `genprior.restore.restore` does to learn its
total steps, restores with a step callback that feeds the progress, and saves the result into its folder.
`Job.status()` is what the page polls. Errors end a job with one line; a traceback goes only to the server log.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GenpriorError
from ..restore import RestoreOptions, build_method, load_mask

# Files a result folder may hold, in the order the page shows them: name -> (label, kind).
RESULT_FILES = {
    "restored.png": ("Restoration", "image"),
    "observation.png": ("Observation", "image"),
    "merged.png": ("Restoration merged with the observed pixels", "image"),
    "samples.png": ("Posterior samples", "image"),
    "std.png": ("Per-pixel std", "image"),
    "lower.png": ("Interval: lower bound", "image"),
    "upper.png": ("Interval: upper bound", "image"),
    "phi.png": ("φ map (weight of the prior)", "image"),
    "truth.png": ("Truth (simulated)", "image"),
    "baseline.png": ("Baseline", "image"),
    "pseudo_inverse.png": ("Pseudo-inverse", "image"),
    "report.png": ("Report", "report"),
    "index.html": ("Report (page)", "report"),
    "config.json": ("Settings and metrics (JSON)", "data"),
    "state.safetensors": ("Full state (safetensors)", "data"),
}


class Busy(GenpriorError):
    """A job is running; the page may start another when it ends."""


class Cancelled(Exception):
    """Raised from the step callback when the user cancels a job."""


def one_line(exc: BaseException) -> str:
    """An exception's message as one line (as the CLI prints errors)."""
    return "; ".join(p.strip() for p in str(exc).splitlines() if p.strip()) or type(exc).__name__


class GeneratorCache:
    """Generators loaded once per (name, device) and kept."""

    def __init__(self, device: str = "auto") -> None:
        self.device = device
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._loaded:
                from ..io.checkpoints import load_generator

                self._loaded[name] = load_generator(name, device=self.device)
            return self._loaded[name]


@dataclass
class Job:
    """One restoration; ``state`` goes queued -> loading -> running -> saving -> done (or error, cancelled)."""

    id: str
    model: str
    options: RestoreOptions
    image: Path
    name: str  # the upload's file name, shown instead of the temp path
    folder: Path
    state: str = "queued"
    stage: str = ""
    step: int = 0
    total: int = 0
    error: str = ""
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def result(self) -> Path:
        return self.folder / "result"

    @property
    def active(self) -> bool:
        return self.state in ("queued", "loading", "running", "saving")

    def files(self) -> list[dict[str, str]]:
        """The result's files the page shows, in `RESULT_FILES` order, each {name, label, kind}."""
        if self.state != "done":
            return []
        return [{"name": n, "label": label, "kind": kind} for n, (label, kind) in RESULT_FILES.items()
                if (self.result / n).is_file()]

    def status(self) -> dict[str, Any]:
        """What the page polls: state, progress (fraction in [0, 1]), the error, notes, metrics and files."""
        fraction = 1.0 if self.state == "done" else (min(self.step / self.total, 1.0) if self.total else 0.0)
        return {"id": self.id, "state": self.state, "stage": self.stage, "step": self.step, "total": self.total,
                "fraction": fraction, "error": self.error, "notes": self.notes, "metrics": self.metrics,
                "seconds": round(self.seconds if not self.active else time.time() - self.started, 1),
                "model": self.model, "input": self.name, "files": self.files()}

    def on_step(self, step: Any) -> None:
        """The method's callback: one `genprior.methods.base.Step` per step."""
        if self.cancel.is_set():
            raise Cancelled()
        self.stage, self.step = step.stage, self.step + 1

    def run(self, cache: GeneratorCache) -> None:
        """Load, check, restore, save; every failure ends in ``state`` error with a one-line ``error``."""
        from ..restore import restore

        try:
            self.state = "loading"
            G = cache.get(self.model)
            if self.cancel.is_set():
                raise Cancelled()
            if self.options.task == "inpaint":
                load_mask(self.options.mask, G.resolution, self.options.seed)  # a bad mask stops here
            self.total = build_method(self.options, G, None).total_steps()
            self.state = "running"
            res = restore(self.image, G, self.options, callback=self.on_step)
            self.state = "saving"
            res.config["input"] = self.name
            res.save(self.result)
            self.notes = [n.replace(str(self.image), self.name) for n in res.config.get("notes", [])]
            self.metrics = res.history.get("metrics", {})
            self.state = "done"
        except Cancelled:
            self.state, self.error = "cancelled", "cancelled"
        except (GenpriorError, ValueError, OSError) as exc:
            self.state, self.error = "error", one_line(exc).replace(str(self.image), self.name)
        except MemoryError:
            self.state, self.error = "error", "out of memory: choose fewer samples or a smaller model"
        except Exception as exc:  # a bug: one line on the page, the traceback in the server's log
            traceback.print_exc(file=sys.stderr)
            self.state, self.error = "error", f"internal error ({type(exc).__name__}: {one_line(exc)}); " \
                                              "the server's log has the details"
        finally:
            self.seconds = time.time() - self.started


class JobRunner:
    """Runs one job at a time in a background thread; keeps the last ``keep`` jobs' folders under ``root``."""

    def __init__(self, root: Path | None = None, device: str = "auto", keep: int = 20) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="genprior-web-"))
        self.cache = GeneratorCache(device)
        self.keep = keep
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:12]
        folder = self.root / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def submit(self, job_id: str, folder: Path, model: str, options: RestoreOptions, image: Path, name: str) -> Job:
        """Start a job in a background thread; `Busy` (one line) while another is active."""
        with self._lock:
            running = next((j for j in self.jobs.values() if j.active), None)
            if running is not None:
                done = f", {100 * running.status()['fraction']:.0f} % done" if running.total else ""
                raise Busy(f"a restoration is already running ({running.name}{done}); wait for it to finish "
                           "or cancel it")
            job = Job(job_id, model, options, image, name, folder)
            self.jobs[job_id] = job
            self._forget_old()
        threading.Thread(target=job.run, args=(self.cache,), name=f"genprior-job-{job_id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if not j.active]
        for job in finished[: max(0, len(self.jobs) - self.keep)]:
            del self.jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Ask a running job to stop and remove every job folder."""
        for job in self.jobs.values():
            job.cancel.set()
        shutil.rmtree(self.root, ignore_errors=True)
