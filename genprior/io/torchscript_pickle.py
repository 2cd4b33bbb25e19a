"""The pickles inside a TorchScript archive (``data.pkl``, ``constants.pkl``), unpickled without running anything.

`unpickle_script` reads one with `genprior.io.pickles.RestrictedUnpickler` and `torchscript_allow_list()`: each
``__torch__.*`` class becomes an inert `ScriptObject` that only stores the state given to it, tensors are rebuilt
only by genprior's checked stand-ins below as lazy `TensorRef` records (nothing is read from ``data/``), storages
come only from the archive's own ``data/`` entries, and any other global raises `UnsafePickleError` before it can
be called.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import CheckpointError, UnsafePickleError
from .pickles import AllowList, restricted_loads

__all__ = ["ScriptObject", "TensorRef", "StorageRef", "torchscript_allow_list", "unpickle_script"]

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}
_KEY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


# ----------------------------------------------------------------------------------------------- records


class ScriptObject:
    """An instance of a TorchScript class (``__torch__.*``) as pickled: its qualified name and its state.

    Nothing of the class is resolved or run; ``state`` is whatever ``BUILD`` passed (a dict of attributes for
    modules).
    """

    qualified_name: str = "__torch__.?"
    state: Any = None

    def __init__(self, *args: Any) -> None:  # only reached through REDUCE; a record never takes arguments
        if args:
            raise UnsafePickleError(f"{self.qualified_name}: a TorchScript object was called with arguments")
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    @property
    def attributes(self) -> dict[str, Any]:
        """The attribute dict (empty when the state is not a dict)."""
        return self.state if isinstance(self.state, dict) else {}

    def __repr__(self) -> str:
        return f"ScriptObject({self.qualified_name}, {len(self.attributes)} attributes)"


@dataclass(frozen=True, slots=True)  # slots: BUILD cannot rewrite it
class _StorageType:
    """What ``GLOBAL 'torch FloatStorage'`` (etc.) resolves to: only a dtype tag, never a torch class."""

    name: str
    dtype: torch.dtype


@dataclass(frozen=True, slots=True)  # slots: BUILD cannot rewrite it
class StorageRef:
    """A storage of the archive, ``data/<key>``, not read yet."""

    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True, slots=True)  # slots: BUILD cannot rewrite it
class TensorRef:
    """A tensor of the archive, not read yet: a view (offset, size, stride) of one storage."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    requires_grad: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return self.storage.dtype

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.size)


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise CheckpointError(f"malformed tensor {what} {value!r}")
    if any(v < 0 for v in value):
        raise CheckpointError(f"negative tensor {what} {value!r}")
    return tuple(value)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: checks the arguments and records a `TensorRef`."""
    if not isinstance(storage, StorageRef):
        raise CheckpointError(f"tensor storage is {type(storage).__name__}, not a storage of the archive")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise CheckpointError(f"malformed tensor storage offset {storage_offset!r}")
    size_t, stride_t = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size_t) != len(stride_t):
        raise CheckpointError(f"tensor size {size_t} and stride {stride_t} differ in length")
    if backward_hooks:  # an empty OrderedDict is what torch writes
        raise CheckpointError("a tensor with backward hooks is not a plain weight")
    if metadata:  # conj/neg bits or tensor-subclass state: not used by weights
        raise CheckpointError(f"unsupported tensor metadata {metadata!r}")
    if any(s == 0 for s in size_t):
        return TensorRef(storage, storage_offset, size_t, stride_t, bool(requires_grad))
    last = storage_offset + sum((n - 1) * s for n, s in zip(size_t, stride_t))
    if last >= storage.numel:
        raise CheckpointError(f"tensor {size_t}/{stride_t}+{storage_offset} reaches past its storage of "
                              f"{storage.numel} elements")
    return TensorRef(storage, storage_offset, size_t, stride_t, bool(requires_grad))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> TensorRef:
    """Stand-in for the older ``torch._utils._rebuild_tensor``."""
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _build_list(values: Any) -> list:
    """Stand-in for ``torch.jit._pickle.build_{int,double,bool,tensor}list``: the list itself."""
    if not isinstance(values, list):
        raise CheckpointError(f"malformed TorchScript list {type(values).__name__}")
    return values


def _restore_type_tag(value: Any, type_str: Any) -> Any:
    """Stand-in for ``torch.jit._pickle.restore_type_tag``: drops the type annotation."""
    return value


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if not all(isinstance(v, (int, float)) for v in (real, imag)):
        raise CheckpointError("malformed complex number")
    return complex(real, imag)


_STAND_INS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch.jit._pickle", "build_intlist"): _build_list,
    ("torch.jit._pickle", "build_doublelist"): _build_list,
    ("torch.jit._pickle", "build_boollist"): _build_list,
    ("torch.jit._pickle", "build_tensorlist"): _build_list,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "complex"): _complex,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _ScriptGlobals(dict):
    """TorchScript's allow-list: the stand-ins above, storage type tags (``torch.<Type>Storage``, a dtype tag,
    never a torch class), and for each ``__torch__.*`` class an inert `ScriptObject` subclass made on first use."""

    def __missing__(self, key: tuple[str, str]) -> type[ScriptObject]:
        module, name = key
        if module != "__torch__" and not module.startswith("__torch__."):
            raise KeyError(key)
        qualified = f"{module}.{name}"
        cls = type("ScriptObject", (ScriptObject,), {"qualified_name": qualified, "__module__": __name__})
        self[key] = cls
        return cls


def torchscript_allow_list() -> AllowList:
    """The allow-list of a TorchScript pickle, fresh for each pickle (its ``__torch__`` classes are its own)."""
    return AllowList("TorchScript pickle", _ScriptGlobals(_STAND_INS))


class _StorageTable:
    """``persistent_load`` of a TorchScript pickle: ``('storage', <type tag>, key, location, numel)`` ->
    a `StorageRef` to the archive's own ``data/<key>`` (checked; one record per key)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._storages: dict[str, StorageRef] = {}

    def __call__(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self.source}: unexpected persistent id {pid!r}")
        _, stype, key, location, numel = pid
        if not isinstance(stype, _StorageType):
            raise CheckpointError(f"{self.source}: storage type {stype!r} is not a torch storage")
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key in {".", ".."}:
            raise CheckpointError(f"{self.source}: malformed storage key {key!r}")
        if not isinstance(location, str) or not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise CheckpointError(f"{self.source}: malformed storage record {pid!r}")
        old = self._storages.get(key)
        if old is not None:
            if old.dtype != stype.dtype or old.numel != numel:
                raise CheckpointError(f"{self.source}: storage {key} is declared twice with different types")
            return old
        ref = StorageRef(key, stype.dtype, numel)
        self._storages[key] = ref
        return ref


def unpickle_script(blob: bytes, source: str) -> Any:
    """``data.pkl`` / ``constants.pkl`` through the restricted unpickler with the TorchScript allow-list."""
    return restricted_loads(blob, torchscript_allow_list(), source=source, persistent_load=_StorageTable(source))
