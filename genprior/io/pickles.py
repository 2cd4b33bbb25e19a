"""A restricted unpickler for NVlabs network pickles (PyTorch and TensorFlow StyleGAN2).

Stock unpickling of an NVlabs ``.pkl`` executes the Python source embedded in it. This reader never
does: it resolves only an allow-list of globals, turns each persistent object into a plain record
(class name + state), and refuses anything else with `UnsafePickleError` before it can run.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import torch
import torch._utils

from ..errors import CheckpointError, UnsafePickleError


@dataclass
class PersistentRecord:
    """What ``torch_utils.persistence`` stored for one object: its class name and ``__dict__``."""

    class_name: str
    state: dict[str, Any]
    module_src_sha1: str | None = None


@dataclass
class TFNetwork:
    """A ``dnnlib.tflib.network.Network`` from a TF StyleGAN2 pickle, as its pickled state."""

    state: dict[str, Any] = field(default_factory=dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PersistentRecord:
    """Replacement for ``torch_utils.persistence._reconstruct_persistent_obj``: records, never executes."""
    import hashlib

    if not isinstance(meta, dict) or meta.get("type") != "class" or "state" not in meta:
        raise CheckpointError("malformed persistent object in network pickle")
    src = meta.get("module_src")
    sha1 = hashlib.sha1(src.encode()).hexdigest() if isinstance(src, str) else None
    return PersistentRecord(class_name=str(meta.get("class_name")), state=dict(meta["state"]), module_src_sha1=sha1)


def _load_storage_from_bytes(blob: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes``: the legacy stream read with weights_only=True."""
    return torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")


def _numpy_global(name: str) -> Any:
    core = getattr(np, "_core", None) or np.core
    return getattr(core.multiarray, name)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "scalar")] = lambda *a: _numpy_global("scalar")(*a)
    _ALLOWED[(_mod, "_reconstruct")] = lambda *a: _numpy_global("_reconstruct")(*a)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_ALLOWED``; anything else raises `UnsafePickleError`."""

    def __init__(self, file: BinaryIO, *, source: str = "<pickle>") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to load global {module}.{name}; genprior reads only network pickles "
                "(StyleGAN2-ADA / TF StyleGAN2) and never runs code from a file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: unexpected persistent id {pid!r} in a network pickle")


def load_pickle(path: str, data: bytes | None = None) -> Any:
    """Unpickle ``path`` (or ``data``) with `RestrictedUnpickler`; errors name the file."""
    try:
        if data is None:
            with open(path, "rb") as f:
                data = f.read()
        return RestrictedUnpickler(io.BytesIO(data), source=str(path)).load()
    except (UnsafePickleError, CheckpointError):
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable network pickle (truncated or corrupt?): {exc}") from None


def module_state_dict(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a pickled module (record or plain dict state) into an official-order state dict."""
    state = record.state
    out: dict[str, torch.Tensor] = {}
    skip = set(state.get("_non_persistent_buffers_set", ()) or ())
    for key, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + key] = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    for key, value in (state.get("_buffers") or {}).items():
        if value is not None and key not in skip:
            out[prefix + key] = value
    for key, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise CheckpointError(f"unexpected submodule type {type(child).__name__} at {prefix + key}")
        out.update(module_state_dict(child, prefix + key + "."))
    return out


def to_builtin(value: Any) -> Any:
    """Plain JSON-able Python values from pickled kwargs (EasyDict, numpy scalars, tuples)."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
