"""NVlabs network pickles (stylegan2-ada-pytorch and TF StyleGAN2), read without running their code.

Stock unpickling of an NVlabs ``.pkl`` executes the Python source embedded in it. Here the file is read by
`genprior.io.pickles.RestrictedUnpickler` with the allow-list of its format: `NVLABS_PICKLE` turns each
persistent object into a plain `PersistentRecord` (class name + state), `TF_PICKLE` each
``dnnlib.tflib.network.Network`` into a `TFNetwork` record; any other global is refused before it can run.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch._utils

from ..errors import CheckpointError
from .pickles import AllowList, RefusedGlobal, restricted_loads
from .weights import load_torch_weights

__all__ = ["PersistentRecord", "TFNetwork", "EasyDict", "NVLABS_PICKLE", "TF_PICKLE", "load_network_pickle",
           "module_state_dict", "to_builtin"]


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
    if not isinstance(meta, dict) or meta.get("type") != "class" or "state" not in meta:
        raise CheckpointError("malformed persistent object in network pickle")
    src = meta.get("module_src")
    sha1 = hashlib.sha1(src.encode()).hexdigest() if isinstance(src, str) else None
    return PersistentRecord(class_name=str(meta.get("class_name")), state=dict(meta["state"]), module_src_sha1=sha1)


def _load_storage_from_bytes(blob: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes``: the legacy stream read with weights_only=True."""
    return load_torch_weights(io.BytesIO(blob), source="a tensor storage inside the network pickle")


def _numpy_global(name: str) -> Any:
    core = getattr(np, "_core", None) or np.core
    return getattr(core.multiarray, name)


_COMMON: dict[tuple[str, str], Any] = {
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _COMMON[(_mod, "scalar")] = lambda *a: _numpy_global("scalar")(*a)
    _COMMON[(_mod, "_reconstruct")] = lambda *a: _numpy_global("_reconstruct")(*a)
del _mod

NVLABS_PICKLE = AllowList("StyleGAN2-ADA network pickle", {
    **_COMMON,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
})
TF_PICKLE = AllowList("TF StyleGAN2 network pickle", {**_COMMON, ("dnnlib.tflib.network", "Network"): TFNetwork})


def load_network_pickle(path: str | os.PathLike, data: bytes | None = None) -> Any:
    """Unpickle an NVlabs network pickle ``path`` (or its bytes ``data``) safely; errors name the file.

    It is read with `NVLABS_PICKLE`; a file that asks for a TF ``Network`` is read again with `TF_PICKLE`
    (the first thing a TF pickle holds, so nothing else was rebuilt before).
    """
    source = str(path)
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CheckpointError(f"{source}: no such file") from None
    try:
        return restricted_loads(data, NVLABS_PICKLE, source=source)
    except RefusedGlobal as exc:
        if exc.refused not in TF_PICKLE.globals:
            raise
    return restricted_loads(data, TF_PICKLE, source=source)


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
