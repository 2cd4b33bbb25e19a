"""The model zoo: named model files, where to find them, and a download-and-cache that never trusts a bad file.

`fetch(name)` looks for a model file in this order and returns the first good one:

1. the file shipped inside the package (``genprior/models/<filename>``, entries with ``packaged=True``);
2. the cache, ``genprior.paths.cache_dir() / "models" / <filename>``;
3. the entry's ``search`` paths under the shared folder (``genprior.paths.shared_dir()``), used in place;
4. a download from each of the entry's URLs in turn, unless offline (``GENPRIOR_OFFLINE=1``).

A file whose sha256 differs from the recorded one is reported and skipped, never used. An entry without a
recorded sha256 accepts its first download and warns with the hash (trust on first use).

The entries themselves are data in `genprior.io.registry`; the HTTP transfer is `genprior.io.download`.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import DownloadError, GenpriorError
from .download import download, file_sha256
from .registry import MODELS

__all__ = [
    "ModelEntry",
    "UnknownModelError",
    "UnverifiedDownloadWarning",
    "register",
    "get_entry",
    "list_models",
    "is_offline",
    "cache_path",
    "fetch",
    "download",
    "file_sha256",
]

FORMATS = frozenset(
    {
        "native",
        "nvlabs-pkl",
        "tf-pkl",
        "rosinality-pt",
        "mganprior-pth",
        "dcgan-safetensors",
        "vgg16-safetensors",
        "lpips-vgg-pt",
        "bigprior-pth",
        "fid-inception-pth",
    }
)
KINDS = frozenset({"generator", "perceptual", "fusion", "metric"})

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TRUE = {"1", "true", "yes"}
_PACKAGED_DIR = Path(__file__).resolve().parent.parent / "models"


class UnknownModelError(GenpriorError, KeyError):
    """No model of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnverifiedDownloadWarning(UserWarning):
    """A file was accepted without a recorded sha256 (trust on first use)."""


@dataclass(frozen=True)
class ModelEntry:
    """One named model file: where it comes from, how to check it, and under which terms."""

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    license: str
    description: str
    format: str
    kind: str = "generator"
    config: dict[str, Any] | None = field(default=None, hash=False)
    size_bytes: int | None = None
    packaged: bool = False
    search: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise GenpriorError("a model entry needs a name")
        if not self.filename or Path(self.filename).name != self.filename or self.filename in {".", ".."}:
            raise GenpriorError(f"model {self.name!r}: filename must be a plain file name, got {self.filename!r}")
        if self.sha256 is not None and not _SHA256_RE.fullmatch(self.sha256):
            raise GenpriorError(f"model {self.name!r}: sha256 must be 64 lower-case hex digits or None")
        if self.format not in FORMATS:
            raise GenpriorError(f"model {self.name!r}: unknown format {self.format!r}; known: {sorted(FORMATS)}")
        if self.kind not in KINDS:
            raise GenpriorError(f"model {self.name!r}: unknown kind {self.kind!r}; known: {sorted(KINDS)}")
        if not self.license.strip():
            raise GenpriorError(f"model {self.name!r}: a licence is required")
        for rel in self.search:
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise GenpriorError(f"model {self.name!r}: search path {rel!r} must be relative, without '..'")


# --------------------------------------------------------------------------------------------- registry

_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry, *, replace: bool = False) -> None:
    """Add an entry to the zoo; a different entry under a taken name is refused unless ``replace``."""
    old = _REGISTRY.get(entry.name)
    if old is not None and old != entry and not replace:
        raise GenpriorError(f"a different model is already registered as {entry.name!r} (use replace=True)")
    _REGISTRY[entry.name] = entry


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name``; an unknown name raises `UnknownModelError` with the closest names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}.")


def list_models(kind: str | None = None) -> list[ModelEntry]:
    """The registered entries in registration order, optionally only those of one kind."""
    if kind is not None and kind not in KINDS:
        raise GenpriorError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    return [e for e in _REGISTRY.values() if kind is None or e.kind == kind]


# --------------------------------------------------------------------------------------------- fetch


def is_offline() -> bool:
    """True when the environment variable ``GENPRIOR_OFFLINE`` is 1, true or yes."""
    return os.environ.get("GENPRIOR_OFFLINE", "").strip().lower() in _TRUE


def cache_path(entry: ModelEntry) -> Path:
    """Where the cache keeps (or would keep) this entry's file."""
    return paths.cache_dir() / "models" / entry.filename


def fetch(name_or_entry: str | ModelEntry, *, offline: bool | None = None, progress: bool = True) -> Path:
    """The local path of a model file: packaged, cached, found in the shared folder, or downloaded."""
    entry = name_or_entry if isinstance(name_or_entry, ModelEntry) else get_entry(name_or_entry)
    offline = is_offline() if offline is None else offline
    target = cache_path(entry)
    problems: list[str] = []
    candidates = _local_candidates(entry, target)
    for candidate in candidates:
        if _usable(entry, candidate, problems):
            return candidate
    problems.extend(f"not found: {c}" for c in candidates if c != target and not c.is_file())
    if offline:
        raise DownloadError(_manual_message(entry, target, "genprior is offline (GENPRIOR_OFFLINE)", problems))
    if not entry.urls:
        raise DownloadError(_manual_message(entry, target, "no download URL is known", problems))
    for url in entry.urls:
        try:
            download(url, target, sha256=entry.sha256, progress=progress)
        except DownloadError as exc:
            problems.append(str(exc))
            continue
        _warn_if_unverified(entry, target)
        return target
    raise DownloadError(_manual_message(entry, target, "every download URL failed", problems))


def _local_candidates(entry: ModelEntry, target: Path) -> list[Path]:
    """The places a file may already be, in the order they are tried."""
    found = [_PACKAGED_DIR / entry.filename] if entry.packaged else []
    found.append(target)
    shared = paths.shared_dir()
    if shared is not None:
        found.extend(shared / rel for rel in entry.search)
    return found


def _usable(entry: ModelEntry, path: Path, problems: list[str]) -> bool:
    """Whether ``path`` exists and matches the recorded hash; a mismatch is warned about and noted."""
    if not path.is_file():
        return False
    if entry.sha256 is None:
        return True
    actual = file_sha256(path)
    if actual == entry.sha256:
        return True
    note = f"{path} has sha256 {actual}, expected {entry.sha256}: not used"
    warnings.warn(f"model {entry.name!r}: {note}", stacklevel=3)
    problems.append(note)
    return False


def _warn_if_unverified(entry: ModelEntry, path: Path) -> None:
    """Trust on first use: say that nothing was checked, and print the hash to record."""
    if entry.sha256 is None:
        warnings.warn(
            f"model {entry.name!r}: no sha256 is recorded, so the download was accepted unchecked; "
            f"its sha256 is {file_sha256(path)} ({path})",
            UnverifiedDownloadWarning,
            stacklevel=3,
        )


def _manual_message(entry: ModelEntry, target: Path, reason: str, problems: list[str]) -> str:
    """A DownloadError message that tells a user exactly how to provide the file by hand."""
    expected = entry.sha256 or "not recorded (any file is accepted; its hash is printed on first use)"
    urls = "\n".join(f"    {u}" for u in entry.urls) or "    (none known; see the description below)"
    lines = [
        f"model {entry.name!r} is not available: {reason}.",
        f"  file name:       {entry.filename}",
        f"  place it at:     {target}",
        f"  expected sha256: {expected}",
        "  URLs:",
        urls,
        f"  description:     {entry.description}",
    ]
    if problems:
        lines.append("  details:")
        lines.extend(f"    {p}" for p in problems)
    lines.append("  (the cache folder is set by GENPRIOR_HOME; GENPRIOR_OFFLINE=1 forbids downloads)")
    return "\n".join(lines)


for _spec in MODELS:
    register(ModelEntry(**_spec))
del _spec


def default_fusion(G: Any, task: str) -> Path:
    """The zoo's fusion net for generator G (loaded by zoo name) and task (colorize, inpaint, denoise)."""
    name = getattr(G, "zoo_name", None)
    for entry in list_models("fusion"):
        cfg = entry.config or {}
        if name is not None and cfg.get("generator") == name and cfg.get("task") == task:
            return fetch(entry, progress=False)
    raise GenpriorError(f"no fusion net in the zoo for {name or 'this generator'} and {task}; pass --fusion "
                        "(train one with `genprior bigprior train`)")
