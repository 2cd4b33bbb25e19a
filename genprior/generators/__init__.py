"""Generator families behind one interface (see `base.Generator`)."""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from .base import Generator

FAMILIES: dict[str, type[Generator]] = {}


def register_family(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make a family buildable from its config by name."""
    FAMILIES[cls.family] = cls
    return cls


def build_generator(config: dict[str, Any]) -> Generator:
    """A freshly initialised generator from ``{"family": ..., "kwargs": {...}}``."""
    family = config.get("family")
    if family not in FAMILIES:
        raise CheckpointError(f"unknown generator family {family!r}; known: {sorted(FAMILIES)}")
    try:
        return FAMILIES[family](**config.get("kwargs", {}))
    except TypeError as exc:
        raise CheckpointError(f"bad {family} config {config.get('kwargs')}: {exc}") from None


from . import stylegan2, pggan, dcgan  # noqa: E402,F401  (registers the families)

__all__ = ["Generator", "FAMILIES", "build_generator", "register_family"]
