"""Read the tensors of a TorchScript archive (``torch.jit.save``) without running any of its code.

`torch.jit.load` compiles and runs the TorchScript program stored in the archive. This reader never does. A
TorchScript archive is a zip with one top folder ``<archive>/`` holding:

* ``data.pkl``: the module tree, pickled (protocol 2). Every module is ``GLOBAL '__torch__.<path> <Class>'``,
  ``NEWOBJ`` and ``BUILD`` with a dict of its attributes; tensors are ``torch._utils._rebuild_tensor_v2`` calls
  on persistent ids ``('storage', torch.<Type>Storage, key, location, numel)``;
* ``data/<key>``: the raw bytes of each storage (little-endian unless ``byteorder`` says otherwise);
* ``constants.pkl``: tensor constants of the compiled code (same pickle format);
* ``code/``: the TorchScript source of every class. It is never executed or imported. It is only parsed with
  `ast` (which evaluates nothing) to read the ``__parameters__ = [...]`` / ``__buffers__ = [...]`` lists, so
  that `state_dict` returns exactly the names ``torch.jit.load(path).state_dict()`` would.

`data.pkl` is read with `ScriptUnpickler`: each ``__torch__.*`` class becomes an inert `ScriptObject` that only
stores the state given to it, tensors are rebuilt only by the functions in an allow-list (lazily: nothing is
read from ``data/`` until asked for), storages come only from the archive's own ``data/`` entries, and any other
global raises `UnsafePickleError` before it can be called.
"""

from __future__ import annotations

import ast
import collections
import io
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError, UnsafePickleError

__all__ = [
    "ScriptObject",
    "TensorRef",
    "TorchScriptArchive",
    "ScriptUnpickler",
    "read_torchscript",
    "load_torchscript_state_dict",
]

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
_MAX_CODE_BYTES = 16 << 20  # code files larger than this are not parsed (fall back to every tensor attribute)


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
class _StorageRef:
    """A storage of the archive, ``data/<key>``, not read yet."""

    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True, slots=True)  # slots: BUILD cannot rewrite it
class TensorRef:
    """A tensor of the archive, not read yet: a view (offset, size, stride) of one storage."""

    storage: _StorageRef
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
    if not isinstance(storage, _StorageRef):
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


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch.jit._pickle", "build_intlist"): _build_list,
    ("torch.jit._pickle", "build_doublelist"): _build_list,
    ("torch.jit._pickle", "build_boollist"): _build_list,
    ("torch.jit._pickle", "build_tensorlist"): _build_list,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "complex"): _complex,
}


class ScriptUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` / ``constants.pkl`` of a TorchScript archive without resolving anything unsafe.

    ``__torch__.*`` classes become `ScriptObject` subclasses (one per qualified name, created here and inert),
    ``torch.<Type>Storage`` becomes a dtype tag, the functions in ``_ALLOWED`` are genprior's own checked
    stand-ins, persistent ids become `_StorageRef` records; everything else raises `UnsafePickleError`.
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str) -> None:
        super().__init__(file)
        self.source = source
        self._classes: dict[str, type[ScriptObject]] = {}
        self._storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            cls = self._classes.get(qualified)
            if cls is None:
                cls = type("ScriptObject", (ScriptObject,), {"qualified_name": qualified, "__module__": __name__})
                self._classes[qualified] = cls
            return cls
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to load global {module}.{name}; genprior reads only the tensors of a "
                "TorchScript archive and never runs code from a file"
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
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
        ref = _StorageRef(key, stype.dtype, numel)
        self._storages[key] = ref
        return ref


def _unpickle(blob: bytes, source: str) -> Any:
    try:
        return ScriptUnpickler(io.BytesIO(blob), source=source).load()
    except (UnsafePickleError, CheckpointError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, RecursionError, MemoryError) as exc:
        raise CheckpointError(f"{source}: not a readable TorchScript pickle: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------------------------------------- code lists


@dataclass(frozen=True)
class ClassDecl:
    """What ``code/`` declares about one TorchScript class (read with `ast`, never run)."""

    is_module: bool
    parameters: tuple[str, ...] | None
    buffers: tuple[str, ...] | None


def _string_list(node: ast.AST) -> tuple[str, ...] | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _class_decls(source: str, module: str) -> dict[str, ClassDecl]:
    """``__parameters__`` / ``__buffers__`` of each top-level class in one code file."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    out: dict[str, ClassDecl] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        lists: dict[str, tuple[str, ...] | None] = {}
        for item in node.body:
            if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                if item.targets[0].id in ("__parameters__", "__buffers__"):
                    lists[item.targets[0].id] = _string_list(item.value)
        is_module = any(isinstance(b, ast.Name) and b.id == "Module" for b in node.bases)
        out[f"{module}.{node.name}"] = ClassDecl(is_module, lists.get("__parameters__"), lists.get("__buffers__"))
    return out


# ----------------------------------------------------------------------------------------------- archive


def _root_folder(names: list[str], source: str) -> str:
    roots = {n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith("/data.pkl")}
    if len(roots) != 1:
        raise CheckpointError(f"{source}: not a TorchScript archive (expected one '<archive>/data.pkl', "
                              f"found {len(roots)})")
    return roots.pop()


@dataclass
class TorchScriptArchive:
    """A TorchScript archive read without running it: the module tree of records and lazy tensors.

    ``module`` is the root `ScriptObject`; tensors inside it are `TensorRef` (shape and dtype known, data not
    read). `state_dict` reads the tensors ``torch.jit.load(path).state_dict()`` would return.
    """

    path: Path
    root: str
    module: ScriptObject
    constants_raw: Any
    declarations: dict[str, ClassDecl] = field(default_factory=dict)
    version: str | None = None
    byteorder: str = "little"

    # -- names

    def _tensor_names(self, obj: ScriptObject) -> tuple[list[str], bool]:
        """The attribute names of ``obj`` that are state-dict tensors, and whether ``code/`` declared them."""
        decl = self.declarations.get(obj.qualified_name)
        attrs = obj.attributes
        if decl is not None and decl.parameters is not None and decl.buffers is not None:
            return [n for n in decl.parameters + decl.buffers if isinstance(attrs.get(n), TensorRef)], True
        return [n for n, v in attrs.items() if isinstance(v, TensorRef)], False

    def tensor_refs(self) -> dict[str, TensorRef]:
        """Every state-dict tensor as a lazy `TensorRef`, in ``state_dict()`` order (own tensors, then children)."""
        out: dict[str, TensorRef] = {}
        self._walk(self.module, "", out, set())
        return out

    def undeclared(self) -> list[str]:
        """Qualified names of the module classes whose tensors were taken without a ``code/`` declaration."""
        names: set[str] = set()

        def visit(obj: ScriptObject, seen: set[int]) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if not self._tensor_names(obj)[1]:
                names.add(obj.qualified_name)
            for child in self._children(obj):
                visit(child[1], seen)

        visit(self.module, set())
        return sorted(names)

    def _children(self, obj: ScriptObject) -> list[tuple[str, ScriptObject]]:
        out = []
        for name, value in obj.attributes.items():
            if isinstance(value, ScriptObject):
                decl = self.declarations.get(value.qualified_name)
                if decl is None or decl.is_module:
                    out.append((name, value))
        return out

    def _walk(self, obj: ScriptObject, prefix: str, out: dict[str, TensorRef], seen: set[int]) -> None:
        if id(obj) in seen:  # a shared submodule is listed once, under its first name (as nn.Module does)
            return
        seen.add(id(obj))
        for name in self._tensor_names(obj)[0]:
            out[prefix + name] = obj.attributes[name]
        for name, child in self._children(obj):
            self._walk(child, prefix + name + ".", out, seen)

    # -- data

    def state_dict(self, include: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
        """The tensors (name -> CPU tensor, requires_grad False), optionally only names ``include`` accepts.

        Views of one storage share memory, as after ``torch.jit.load``; only the storages needed are read.
        """
        refs = {k: v for k, v in self.tensor_refs().items() if include is None or include(k)}
        with self._open() as zf:
            cache: dict[str, torch.UntypedStorage] = {}
            return {k: self._materialize(zf, ref, cache) for k, ref in refs.items()}

    def constants(self) -> Any:
        """``constants.pkl`` with its tensors read (usually a tuple of tensors)."""
        with self._open() as zf:
            cache: dict[str, torch.UntypedStorage] = {}
            return _map_refs(self.constants_raw, lambda r: self._materialize(zf, r, cache, folder="constants"))

    def _open(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"{self.path}: cannot reopen the archive: {exc}") from None

    def _materialize(self, zf: zipfile.ZipFile, ref: TensorRef, cache: dict[str, torch.UntypedStorage],
                     folder: str = "data") -> torch.Tensor:
        sref = ref.storage
        if not isinstance(sref, _StorageRef):
            raise CheckpointError(f"{self.path}: malformed tensor record")
        ukey = f"{folder}/{sref.key}"
        storage = cache.get(ukey)
        if storage is None:
            storage = self._read_storage(zf, f"{self.root}/{ukey}", sref)
            cache[ukey] = storage
        try:
            return torch.empty(0, dtype=sref.dtype).set_(storage, ref.offset, ref.size, ref.stride)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.path}: tensor on {ukey} does not fit its storage: {exc}") from None

    def _read_storage(self, zf: zipfile.ZipFile, name: str, sref: _StorageRef) -> torch.UntypedStorage:
        itemsize = torch.empty(0, dtype=sref.dtype).element_size()
        nbytes = sref.numel * itemsize
        try:
            info = zf.getinfo(name)
        except KeyError:
            if name.endswith("/constants/" + sref.key):  # older archives keep constants' storages in data/
                return self._read_storage(zf, name.replace("/constants/", "/data/"), sref)
            raise CheckpointError(f"{self.path}: storage {name} is missing from the archive") from None
        if info.file_size < nbytes:
            raise CheckpointError(f"{self.path}: {name} has {info.file_size} bytes, {nbytes} expected")
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > 1024 * max(info.compress_size, 1):
            raise CheckpointError(f"{self.path}: {name} claims an implausible compression ratio")
        buf = bytearray(nbytes)
        with zf.open(info) as fh:
            view = memoryview(buf)
            got = 0
            while got < nbytes:
                n = fh.readinto(view[got:])
                if not n:
                    raise CheckpointError(f"{self.path}: {name} ended after {got} of {nbytes} bytes")
                got += n
        if nbytes == 0:
            return torch.UntypedStorage(0)
        flat = torch.frombuffer(buf, dtype=torch.uint8)
        if self.byteorder != sys.byteorder and itemsize > 1:
            flat = flat.view(-1, itemsize).flip(1).reshape(-1).clone()
        return flat.untyped_storage()


def _map_refs(value: Any, fn: Callable[[TensorRef], torch.Tensor]) -> Any:
    if isinstance(value, TensorRef):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map_refs(v, fn) for v in value)
    if isinstance(value, list):
        return [_map_refs(v, fn) for v in value]
    if isinstance(value, dict):
        return type(value)((k, _map_refs(v, fn)) for k, v in value.items())
    return value


def read_torchscript(path: str | Path) -> TorchScriptArchive:
    """Open a ``torch.jit.save`` archive and unpickle its module tree safely (tensor data is read lazily).

    Raises `UnsafePickleError` for a pickle that asks for anything outside the allow-list (nothing of it is
    run) and `CheckpointError` for a missing, truncated or malformed file.
    """
    path = Path(path)
    source = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: not a TorchScript archive (not a zip file: {exc})") from None
    with zf:
        names = zf.namelist()
        root = _root_folder(names, source)

        def read(rel: str, limit: int | None = None) -> bytes | None:
            name = f"{root}/{rel}"
            if name not in names:
                return None
            info = zf.getinfo(name)
            if limit is not None and info.file_size > limit:
                return None
            return zf.read(info)

        module = _unpickle(read("data.pkl") or b"", f"{source}:{root}/data.pkl")
        if not isinstance(module, ScriptObject):
            raise CheckpointError(f"{source}: data.pkl holds {type(module).__name__}, not a TorchScript module")
        const_blob = read("constants.pkl")
        constants = _unpickle(const_blob, f"{source}:{root}/constants.pkl") if const_blob else ()
        version = (read("version") or b"").decode("ascii", "replace").strip() or None
        byteorder = (read("byteorder") or b"little").decode("ascii", "replace").strip() or "little"
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{source}: unknown byte order {byteorder!r}")
        declarations: dict[str, ClassDecl] = {}
        code_prefix = f"{root}/code/"
        for name in names:
            if not (name.startswith(code_prefix) and name.endswith(".py")):
                continue
            rel = name[len(code_prefix):-3]
            if not rel or any(part in ("", ".", "..") for part in rel.split("/")):
                continue
            blob = read(name[len(root) + 1:], limit=_MAX_CODE_BYTES)
            if blob is not None:
                declarations.update(_class_decls(blob.decode("utf-8", "replace"), rel.replace("/", ".")))
    return TorchScriptArchive(path, root, module, constants, declarations, version, byteorder)


def load_torchscript_state_dict(path: str | Path, include: Callable[[str], bool] | None = None
                                ) -> dict[str, torch.Tensor]:
    """``torch.jit.load(path).state_dict()`` without running the archive's code (see `read_torchscript`)."""
    return read_torchscript(path).state_dict(include)
