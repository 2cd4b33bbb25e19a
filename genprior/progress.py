"""Progress and notices for long jobs: a bar on a terminal, a line every few seconds anywhere else.

* `progress(iterable, total=..., desc=...)` wraps a loop: on a terminal (stderr is a TTY) it is a tqdm bar;
  otherwise it writes one plain line (``desc: 120/300 (40 %), 12.3 s, ETA 18 s``) every ``interval``
  seconds and one at the end, so logs of non-interactive runs stay small. ``enabled=False`` is silent.
* `notice(msg)` writes one line ``genprior: msg`` to stderr; `one_line_warnings()` makes Python warnings
  print the same way (no source line, no category path) for the command line.
"""

from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

DEFAULT_INTERVAL = 10.0  # seconds between plain progress lines


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default stderr) is an interactive terminal."""
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def notice(msg: str, *, stream: TextIO | None = None) -> None:
    """One line ``genprior: msg`` on stderr (newlines in msg are folded into '; ')."""
    text = "; ".join(part.strip() for part in str(msg).splitlines() if part.strip())
    print(f"genprior: {text}", file=stream or sys.stderr, flush=True)


def _format_warning(message: Any, category: type, filename: str, lineno: int, line: str | None = None) -> str:
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"genprior: warning: {text}\n"


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Within the block, Python warnings print as one ``genprior: warning: ...`` line each."""
    old = warnings.formatwarning
    warnings.formatwarning = _format_warning  # type: ignore[assignment]
    try:
        yield
    finally:
        warnings.formatwarning = old  # type: ignore[assignment]


class _Lines:
    """Iterate and print a plain progress line every ``interval`` seconds (and once at the end)."""

    def __init__(self, iterable: Iterable[T], total: int | None, desc: str, interval: float, stream: TextIO,
                 unit: str) -> None:
        self.iterable, self.total, self.desc = iterable, total, desc or "progress"
        self.interval, self.stream, self.unit = interval, stream, unit
        self.postfix: dict[str, Any] = {}

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = kw

    def _line(self, done: int, start: float) -> str:
        spent = time.monotonic() - start
        text = f"{self.desc}: {done}"
        if self.total:
            eta = spent / done * (self.total - done) if done else float("nan")
            text += f"/{self.total} {self.unit} ({100 * done / self.total:.0f} %), {spent:.1f} s, ETA {eta:.0f} s"
        else:
            text += f" {self.unit}, {spent:.1f} s"
        if self.postfix:
            text += ", " + ", ".join(f"{k} {v}" for k, v in self.postfix.items())
        return text

    def __iter__(self) -> Iterator[T]:
        start = last = time.monotonic()
        done = 0
        for item in self.iterable:
            yield item
            done += 1
            now = time.monotonic()
            if now - last >= self.interval:
                print(self._line(done, start), file=self.stream, flush=True)
                last = now
        if done and time.monotonic() - start >= self.interval:
            print(self._line(done, start), file=self.stream, flush=True)


class _Silent:
    def __init__(self, iterable: Iterable[T]) -> None:
        self.iterable = iterable

    def set_postfix(self, **kw: Any) -> None:
        pass

    def __iter__(self) -> Iterator[T]:
        return iter(self.iterable)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True,
             interval: float = DEFAULT_INTERVAL, stream: TextIO | None = None, unit: str = "steps") -> Any:
    """Iterate ``iterable`` showing progress: a tqdm bar on a terminal, else a plain line every ``interval`` s.

    The returned object is iterable and has ``set_postfix(**values)`` (shown on the bar or in the lines).
    """
    if not enabled:
        return _Silent(iterable)
    stream = stream or sys.stderr
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, file=stream, unit=unit)
    return _Lines(iterable, total, desc, interval, stream, unit)
