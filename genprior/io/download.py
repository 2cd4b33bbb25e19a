"""A resumable, hash-checked HTTP download: ``<dest>.part`` grows (resumed with a Range request), then is checked
against its sha256 and moved into place, so ``dest`` only ever appears complete and verified.

Progress: a tqdm bar over bytes on a terminal, a plain line every ``PROGRESS_INTERVAL`` seconds otherwise (as
`genprior.progress.progress`); ``GENPRIOR_DOWNLOAD_VERBOSE=0`` turns both off.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from ..errors import DownloadError
from ..progress import DEFAULT_INTERVAL, is_terminal

__all__ = ["download", "file_sha256", "USER_AGENT"]

USER_AGENT = "genprior-zoo/0.1 (+python-urllib)"
PROGRESS_INTERVAL = DEFAULT_INTERVAL  # seconds between plain progress lines off a terminal
_CHUNK = 1 << 20
_MIB = float(1 << 20)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, as 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str, dest: str | os.PathLike[str], *, sha256: str | None, progress: bool = True, timeout: float = 30
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part`` (resumed if present), check sha256, move into place.

    Every failure raises `DownloadError`. An interrupted transfer keeps the ``.part`` for the next call; a
    hash mismatch deletes it. ``dest`` only ever appears complete and verified (``os.replace``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _transfer(url, part, show=progress and _verbose(), timeout=timeout, label=dest.name)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # urllib, socket, bad URL: one clear error
        raise DownloadError(f"{url}: {_describe(exc, timeout)}") from exc
    _check_hash(part, sha256, url)
    os.replace(part, dest)
    return dest


def _verbose() -> bool:
    """Progress is shown unless ``GENPRIOR_DOWNLOAD_VERBOSE=0``."""
    return os.environ.get("GENPRIOR_DOWNLOAD_VERBOSE", "1").strip() != "0"


def _describe(exc: BaseException, timeout: float) -> str:
    """A one-line reason for a network failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g} s"
    return f"{type(reason).__name__}: {reason}"


# ----------------------------------------------------------------------------------------------- HTTP


def _request(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Open ``url``, asking for the bytes from ``offset`` on when it is not zero."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _open_resumable(url: str, offset: int, timeout: float) -> tuple[http.client.HTTPResponse, int]:
    """Open ``url`` to continue at ``offset``; returns the response and the offset it really starts at.

    A 200 reply (Range ignored) starts at 0. A 416 reply or a 206 for another range starts again from 0.
    """
    try:
        resp = _request(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        exc.close()
        return _request(url, 0, timeout), 0
    if not offset or _status(resp) != 206:
        return resp, 0
    if _content_range_start(resp) == offset:
        return resp, offset
    resp.close()
    return _request(url, 0, timeout), 0


def _status(resp: Any) -> int:
    """The HTTP status of a response (200 for schemes without one, e.g. file:)."""
    return getattr(resp, "status", None) or 200


def _content_range_start(resp: Any) -> int | None:
    """The first byte of a 206 reply, from ``Content-Range: bytes START-END/TOTAL``."""
    match = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _expected_size(resp: Any, start: int) -> int | None:
    """The full file size implied by the reply, when the server says how much it sends."""
    length = resp.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _transfer(url: str, part: Path, *, show: bool, timeout: float, label: str) -> None:
    """Stream ``url`` into ``part``, appending when the server honours the resume request."""
    offset = part.stat().st_size if part.is_file() else 0
    resp, start = _open_resumable(url, offset, timeout)
    with resp:
        total = _expected_size(resp, start)
        with open(part, "ab" if start else "wb") as out, _ByteProgress(label, total, start, enabled=show) as meter:
            _copy(resp, out, meter)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"{url}: the connection ended after {size} of {total} bytes; {part} is kept and the next call resumes"
        )


def _copy(src: Any, out: BinaryIO, meter: _ByteProgress) -> None:
    """Copy a response body to a file in chunks, advancing the progress meter."""
    for block in iter(lambda: src.read(_CHUNK), b""):
        out.write(block)
        meter.update(len(block))


def _check_hash(part: Path, sha256: str | None, url: str) -> None:
    """Delete ``part`` and raise when its hash is not the expected one."""
    if sha256 is None:
        return
    actual = file_sha256(part)
    if actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: sha256 mismatch: expected {sha256.lower()}, got {actual}; the file was deleted")


# ----------------------------------------------------------------------------------------------- progress


class _ByteProgress:
    """Bytes received: a tqdm bar on a terminal, else ``label: 12.0/95.6 MiB (13 %), 10.2 s, ETA 70 s`` every
    `PROGRESS_INTERVAL` seconds (and once at the end of a transfer that took longer than that)."""

    def __init__(self, label: str, total: int | None, initial: int, *, enabled: bool,
                 stream: TextIO | None = None) -> None:
        self.label, self.total, self.initial, self.done = label, total, initial, initial
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar: Any = None
        if enabled and is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                            leave=False, file=self.stream)
        self.start = self.last = time.monotonic()

    def __enter__(self) -> _ByteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and time.monotonic() - self.start >= PROGRESS_INTERVAL:
            self._line()

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            self._line()

    def _line(self) -> None:
        spent = time.monotonic() - self.start
        text = f"{self.label}: {self.done / _MIB:.1f}"
        if self.total:
            rate = (self.done - self.initial) / spent if spent > 0 else 0.0
            eta = f"{(self.total - self.done) / rate:.0f} s" if rate > 0 else "?"
            text += f"/{self.total / _MIB:.1f} MiB ({100 * self.done / self.total:.0f} %), {spent:.1f} s, ETA {eta}"
        else:
            text += f" MiB, {spent:.1f} s"
        print(text, file=self.stream, flush=True)
