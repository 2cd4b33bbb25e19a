"""One restricted unpickler for every pickle genprior reads; each format brings its own allow-list.

Stock unpickling resolves whatever global a file names and calls it, so a pickle can run any code.
`RestrictedUnpickler` resolves a global only through the `AllowList` of the format being read, a mapping
``(module, name) -> object`` (mostly genprior's own inert stand-ins), and refuses every other global with
`UnsafePickleError` naming it, before anything is called. Persistent ids are refused unless the format gives a
``persistent_load``.

The allow-lists: `NO_GLOBALS` (the magic number at the head of a legacy torch file), the NVlabs and TF StyleGAN2
network pickles (`genprior.io.network_pickle`) and TorchScript archives (`genprior.io.torchscript`).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Mapping

from ..errors import CheckpointError, UnsafePickleError

__all__ = ["AllowList", "RefusedGlobal", "RestrictedUnpickler", "restricted_loads", "NO_GLOBALS"]

# What a malformed pickle can raise from the C unpickler or from a stand-in given wrong arguments.
_MALFORMED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
              RuntimeError, RecursionError, MemoryError)


@dataclass(frozen=True)
class AllowList:
    """The globals one pickle format may resolve, ``(module, name) -> object``; ``name`` names the format.

    ``globals`` may be any mapping: a ``dict`` subclass with ``__missing__`` can allow a family of names.
    """

    name: str
    globals: Mapping[tuple[str, str], Any]


NO_GLOBALS = AllowList("legacy torch file header", {})


class RefusedGlobal(UnsafePickleError):
    """A pickle asked for a global outside the allow-list; ``refused`` is its ``(module, name)``."""

    def __init__(self, message: str, refused: tuple[str, str]) -> None:
        super().__init__(message)
        self.refused = refused


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of ``allow``; anything else raises `RefusedGlobal` before it can run."""

    def __init__(self, file: BinaryIO, allow: AllowList, *, source: str = "<pickle>",
                 persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file)
        self.allow, self.source, self._persistent = allow, source, persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allow.globals[(module, name)]
        except KeyError:
            raise RefusedGlobal(
                f"{self.source}: refusing to load global {module}.{name}: it is not in the allow-list of a "
                f"{self.allow.name}, and genprior never runs code from a file",
                (module, name),
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafePickleError(f"{self.source}: unexpected persistent id {pid!r} in a {self.allow.name}")
        return self._persistent(pid)


def restricted_loads(data: bytes, allow: AllowList, *, source: str,
                     persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """Unpickle ``data`` with `RestrictedUnpickler`; a malformed pickle is one `CheckpointError` naming ``source``.

    `UnsafePickleError` (a refused global) and the stand-ins' own `CheckpointError` pass through unchanged.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), allow, source=source, persistent_load=persistent_load).load()
    except CheckpointError:
        raise
    except _MALFORMED as exc:
        raise CheckpointError(
            f"{source}: not a readable {allow.name} (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None
