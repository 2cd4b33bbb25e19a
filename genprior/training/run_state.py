"""The state of a resumable run on disk: atomic writes, module and optimiser tensors, RNG state, checkpoints.

Used by StyleGAN2 / Projected-GAN training (`genprior.training.loop`) and BIGPrior fusion training
(`genprior.methods.fusion_train`). Files are written to a temporary name and renamed (`genprior.io.atomic`),
so a killed process leaves the previous file or the new one, never half of one.

A *checkpoint* (`save_checkpoint` / `load_checkpoint`) is one safetensors file ``<stem>-<step>.safetensors``
holding every tensor and, in its metadata under ``"state"``, a JSON dict with the rest; a pointer
``<stem>.json`` (written last) names the newest. Loading falls back to older files when the newest is
unreadable; the last ``keep`` files stay on disk.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..io.atomic import atomic_path

__all__ = ["write_text", "write_json", "save_tensors", "module_tensors", "load_module", "optimizer_tensors",
           "optimizer_state", "rng_tensors", "restore_rng", "save_checkpoint", "load_checkpoint"]


# ------------------------------------------------------------------------------------------------ atomic files
def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor) and o.numel() == 1:
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as JSON; numpy scalars, 1-element tensors, tuples and sets become numbers and lists."""
    return json.dumps(obj, indent=indent, default=_json_default)


def write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = True) -> None:
    """Write ``obj`` as indented JSON (see `to_json`) atomically."""
    write_text(path, to_json(obj) + "\n", overwrite=overwrite)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                 *, overwrite: bool = True) -> None:
    """Write tensors (any device or memory layout) as one safetensors file, atomically."""
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(flat, str(tmp), metadata=metadata)


# ------------------------------------------------------------------------------------------------ modules
def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict under ``<prefix>.<name>``, copied to the CPU."""
    return {f"{prefix}.{k}": v.detach().contiguous().cpu().clone() for k, v in module.state_dict().items()}


def load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Load the ``<prefix>.*`` tensors into ``module`` (strictly)."""
    module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    """(tensors ``<prefix>/<param index>/<state name>``, param groups as JSON-able list) of an optimiser."""
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"{prefix}/{idx}/{k}"] = t.detach().contiguous().cpu().clone()
    return tensors, sd["param_groups"]


def optimizer_state(tensors: dict[str, torch.Tensor], prefix: str, groups: list) -> dict:
    """The optimiser state dict `optimizer_tensors` took apart (for ``opt.load_state_dict``)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": groups}


def rng_tensors() -> dict[str, torch.Tensor]:
    """The global torch CPU RNG state (for code that draws from it, e.g. data-set augmentation)."""
    return {"rng.torch": torch.get_rng_state().clone()}


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    """Restore what `rng_tensors` saved (nothing when it is absent)."""
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])


# ------------------------------------------------------------------------------------------------ checkpoints
def checkpoint_name(stem: str, step: int) -> str:
    return f"{stem}-{step:08d}.safetensors"


def save_checkpoint(folder: str | os.PathLike, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                    *, stem: str = "checkpoint", keep: int = 2, meta_key: str = "state") -> Path:
    """Write ``<stem>-<step>.safetensors`` (tensors, ``state`` in the metadata key ``meta_key``), then the pointer
    ``<stem>.json`` (``state`` plus ``tensors_file``), then delete all but the newest ``keep`` files."""
    folder = Path(folder)
    name = checkpoint_name(stem, step)
    state = {**state, "tensors_file": name}
    save_tensors(folder / name, tensors, {meta_key: to_json(state, None)})
    write_text(folder / f"{stem}.json", to_json(state, 1))
    for old in sorted(folder.glob(f"{stem}-*.safetensors"))[:-keep]:
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / name


def _read_state(path: Path, meta_keys: tuple[str, ...]) -> dict[str, Any]:
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    for key in meta_keys:
        if key in meta:
            return json.loads(meta[key])
    raise KeyError(f"no {' or '.join(meta_keys)} metadata")


def load_checkpoint(folder: str | os.PathLike, *, stem: str = "checkpoint", fmt: str | None = None,
                    meta_keys: tuple[str, ...] = ("state",)) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """(state, tensors) of the newest readable checkpoint in ``folder`` (whose state's ``format`` is ``fmt``,
    when given), or None when there is none. Damaged files are skipped with a warning."""
    folder = Path(folder)
    pointer = folder / f"{stem}.json"
    candidates: list[Path] = []
    if pointer.is_file():
        try:
            candidates.append(folder / json.loads(pointer.read_text())["tensors_file"])
        except (json.JSONDecodeError, KeyError, OSError) as exc:
            warnings.warn(f"{pointer}: unreadable ({exc}); looking for checkpoint files instead", stacklevel=2)
    candidates += sorted(folder.glob(f"{stem}-*.safetensors"), reverse=True)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            state = _read_state(path, meta_keys)
            tensors = load_file(str(path))
        except Exception as exc:  # a damaged file: fall back to the one before
            warnings.warn(f"{path}: unreadable checkpoint ({exc}); trying an older one", stacklevel=2)
            continue
        if fmt is None or state.get("format") == fmt:
            return state, tensors
    return None
