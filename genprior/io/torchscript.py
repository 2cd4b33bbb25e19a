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

``data.pkl`` and ``constants.pkl`` are unpickled by `genprior.io.torchscript_pickle` (inert records, lazy tensors,
an allow-list; nothing of the archive runs); tensor data is read from ``data/`` only when asked for."""

from __future__ import annotations

import ast
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError
from .torchscript_pickle import ScriptObject, StorageRef, TensorRef, unpickle_script

__all__ = [
    "ScriptObject",
    "TensorRef",
    "TorchScriptArchive",
    "read_torchscript",
    "load_torchscript_state_dict",
]

_MAX_CODE_BYTES = 16 << 20  # code files larger than this are not parsed (fall back to every tensor attribute)


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
        if not isinstance(sref, StorageRef):
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

    def _read_storage(self, zf: zipfile.ZipFile, name: str, sref: StorageRef) -> torch.UntypedStorage:
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

        module = unpickle_script(read("data.pkl") or b"", f"{source}:{root}/data.pkl")
        if not isinstance(module, ScriptObject):
            raise CheckpointError(f"{source}: data.pkl holds {type(module).__name__}, not a TorchScript module")
        const_blob = read("constants.pkl")
        constants = unpickle_script(const_blob, f"{source}:{root}/constants.pkl") if const_blob else ()
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
