"""What a run reports and listens to: its log, the progress lines, the pending losses, and SIGINT / SIGTERM.

Statistics stay on the device between progress lines: `Ticker` sums them as tensors and reads them once per
line; `PendingLosses` keeps each step's (loss_G, loss_D) until the loop reads them all at once.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import torch

__all__ = ["TrainingLog", "Ticker", "PendingLosses", "StopFlag"]


class TrainingLog:
    """``log(msg)``: append a line to ``path`` (lines before `open` are kept until then) and echo it.

    Nothing is written while ``write`` is False (processes other than rank 0); the file is created only by
    `open`, so a run that fails while it is set up leaves no folder behind.
    """

    def __init__(self, path: Path, *, echo: Callable[[str], None] | None, write: bool = True) -> None:
        self.path, self.echo, self.write = path, echo, write
        self.pending: list[str] = []
        self.file: TextIO | None = None

    def __call__(self, msg: str) -> None:
        if self.write:
            if self.file is None:
                self.pending.append(msg)
            else:
                self.file.write(msg + "\n")
                self.file.flush()
        if self.echo is not None:
            self.echo(msg)

    def open(self) -> None:
        self.file = open(self.path, "a")
        self.file.writelines(m + "\n" for m in self.pending)
        self.file.flush()
        self.pending = []

    def __enter__(self) -> "TrainingLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.file is not None:
            self.file.close()


class PendingLosses:
    """Each step's (loss_G, loss_D) as device tensors until `flush` reads them (one host sync)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[torch.Tensor] = []

    def add(self, step: int, stats: dict[str, torch.Tensor]) -> None:
        self.steps.append(step)
        self.values.append(torch.stack([stats["loss_G"], stats["loss_D"]]))

    def flush(self) -> list[tuple[int, float, float]]:
        """[(step, loss_G, loss_D)] of the steps since the last flush."""
        if not self.values:
            return []
        rows = torch.stack(self.values).float().cpu().tolist()
        out = [(s, g, d) for s, (g, d) in zip(self.steps, rows)]
        self.steps, self.values = [], []
        return out


class Ticker:
    """A progress line (and a ``stats.jsonl`` record) every ``interval`` seconds with the means since the last."""

    def __init__(self, stats_path: Path, say: Callable[[str], None], interval: float, *, enabled: bool) -> None:
        self.stats_path, self.say, self.interval, self.enabled = stats_path, say, interval, enabled
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}

    def start(self, cur_nimg: int) -> None:
        self.t0, self.nimg0 = time.time(), cur_nimg

    def add(self, stats: dict[str, torch.Tensor], augment: Any) -> None:
        if not self.enabled:
            return
        if augment.adaptive:
            stats = {**stats, "augment_p": augment.p}
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v.detach() if k in self.sums else v.detach().clone()
            self.counts[k] = self.counts.get(k, 0) + 1

    def report(self, step: int, cur_nimg: int, train_sec: float, cpu_sec: float = 0.0, *, force: bool = False) -> None:
        """Write the line and record if ``interval`` has passed (or ``force``); ``train_sec`` is the wall time of
        the steps, ``cpu_sec`` this process's CPU time in them (both since the run began)."""
        now = time.time()
        if not self.enabled or not self.sums or (not force and now - self.t0 < self.interval):
            return
        keys = sorted(self.sums)
        values = torch.stack([self.sums[k].float() for k in keys]).cpu().tolist()
        means = {k: v / self.counts[k] for k, v in zip(keys, values)}
        sec_per_kimg = (now - self.t0) / max((cur_nimg - self.nimg0) / 1000, 1e-9)
        rec = dict(step=step, kimg=cur_nimg / 1000, sec_per_kimg=sec_per_kimg, kimg_per_hour=3600 / sec_per_kimg,
                   train_hours=train_sec / 3600, process_cpu_hours=cpu_sec / 3600, time=now, **means)
        with open(self.stats_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        r1_text = f"{means['r1']:.4f}" if "r1" in means else "  -   "
        p_text = f"  p {means['augment_p']:.3f}" if "augment_p" in means else ""
        self.say(f"kimg {cur_nimg / 1000:9.3f}  step {step:7d}  G {means['loss_G']:.3f}  D {means['loss_D']:.3f}  "
                 f"R1 {r1_text}  D(real) {means['logit_real']:+.2f}  D(fake) {means['logit_fake']:+.2f}  "
                 f"sec/kimg {sec_per_kimg:7.1f}  kimg/h {3600 / sec_per_kimg:6.1f}  trained {train_sec / 3600:.2f} h"
                 + p_text)
        self.last = rec
        self.sums, self.counts = {}, {}
        self.t0, self.nimg0 = now, cur_nimg


class StopFlag:
    """Within the block, ``stop`` turns to the signal's name on SIGINT / SIGTERM (main thread only); a second
    SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.stop: str | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.stop is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop = signal.Signals(signum).name
        print(f"\n{self.stop} received: saving a snapshot after this step (Ctrl-C again to abort)", flush=True)

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            for s in self._old:
                signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
