"""The two ways genprior reads tensor files: safetensors, and ``torch.load(weights_only=True)``.

* `read_safetensors(path)` -> `SafetensorsFile` (tensors on the CPU + the string metadata, with `json` to decode
  one JSON-valued key); a damaged file raises one `CheckpointError` naming it.
* `load_torch_weights(path)` is ``torch.load(path, weights_only=True, map_location="cpu")``: a pickle asking for
  a global outside torch's weights-only allow-list raises `UnsafePickleError` (nothing in it runs), a truncated
  or corrupt file `CheckpointError`; both name the file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import CheckpointError, UnsafePickleError

__all__ = ["SafetensorsFile", "read_safetensors", "load_torch_weights"]

_MISSING = object()


@dataclass(frozen=True)
class SafetensorsFile:
    """What a safetensors file holds: ``tensors`` (name -> CPU tensor) and ``metadata`` (str -> str)."""

    path: Path
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]

    def json(self, key: str, default: Any = _MISSING) -> Any:
        """The metadata value ``key`` decoded as JSON; ``default`` when absent (else `CheckpointError`)."""
        if key not in self.metadata:
            if default is _MISSING:
                raise CheckpointError(f"{self.path}: no {key!r} in its safetensors metadata")
            return default
        try:
            return json.loads(self.metadata[key])
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{self.path}: corrupt {key} metadata: {exc}") from None


def read_safetensors(path: str | os.PathLike, *, tensors: bool = True) -> SafetensorsFile:
    """Tensors and metadata of a safetensors file (``tensors=False``: the metadata only, nothing else read).

    Raises `CheckpointError` ("no such file" / "unreadable safetensors file (truncated or corrupt?)").
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
        # clone: load_file's tensors may sit at any byte offset of one buffer, and CPU kernels round differently
        # on unaligned memory, so a result loaded back would not re-render bit-exactly
        data = {k: v.clone() for k, v in load_file(str(path)).items()} if tensors else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f"{path}: unreadable safetensors file (truncated or corrupt?): {reason}") from None
    return SafetensorsFile(path, data, meta)


def load_torch_weights(file: str | os.PathLike | BinaryIO, *, source: str | None = None,
                       allow: Iterable[Any] = ()) -> Any:
    """``torch.load(file, weights_only=True, map_location="cpu")`` with one clear error naming ``source``.

    ``allow``: extra globals for torch's weights-only unpickler (e.g. ``argparse.Namespace``); ``source`` names
    the file in errors (default: the path).
    """
    source = source or str(file)
    if isinstance(file, (str, os.PathLike)) and not Path(file).is_file():
        raise CheckpointError(f"{source}: no such file")
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(f"{source}: refused to load (torch.load weights_only=True): "
                                f"{_weights_only_reason(exc)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f"{source}: unreadable torch file (truncated or corrupt?): {reason}") from None


def _weights_only_reason(exc: pickle.UnpicklingError) -> str:
    """The part of torch's long weights-only message that says what was refused."""
    text = " ".join(str(exc).split())
    refused = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", text)
    if refused:
        return f"Unsupported global: GLOBAL {refused.group(1)}"
    tail = text.split("WeightsUnpickler error:", 1)[-1].split(" Check the documentation of torch.load", 1)[0]
    return tail.strip() or type(exc).__name__
