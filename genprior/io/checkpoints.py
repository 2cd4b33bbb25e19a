"""Read generator checkpoints of every supported format safely; write the native format.

Formats are recognised by content, not by file name:

==================  ===========================================================================
native              ``.safetensors`` with the generator config (JSON) in its metadata
nvlabs-pkl          stylegan2-ada-pytorch network pickle (``G_ema``), read without running its code
tf-pkl              TF StyleGAN2 pickle ``(G, D, Gs)`` as BRGM distributes it, converted on load
rosinality-pt       rosinality stylegan2-pytorch ``.pt`` (architecture inferred from shapes)
state dicts         ``.pth``/``.pt``/``.safetensors`` of official StyleGAN2, mGANprior PGGAN or
                    PyTorch-tutorial DCGAN keys (architecture inferred from shapes)
==================  ===========================================================================

Torch files are read with ``torch.load(weights_only=True)`` (`genprior.io.weights`), safetensors with
`genprior.io.weights.read_safetensors`, pickles with `RestrictedUnpickler` and the allow-list of their format.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .. import __version__
from ..devices import resolve_device
from ..errors import CheckpointError
from ..generators import Generator, build_generator
from . import convert
from .atomic import atomic_path
from .network_pickle import load_network_pickle
from .pickles import NO_GLOBALS, restricted_loads
from .weights import load_torch_weights, read_safetensors

CONFIG_KEY = "genprior_config"
StateDict = dict[str, torch.Tensor]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, StateDict]:
    """(config, state dict) of the generator in ``path``, whatever its format. Raises `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CheckpointError(f"{path}: the file is empty")
    if _looks_like_safetensors(head):
        return _read_safetensors(path)
    if head[:2] == b"PK" or head[:1] == b"\x80" and _is_legacy_torch(path):
        return _from_torch_object(load_torch_weights(path, allow=[argparse.Namespace]), str(path))
    if head[:1] == b"\x80":
        return _from_pickle(load_network_pickle(path), str(path))
    raise CheckpointError(f"{path}: unknown checkpoint format (not safetensors, a torch file or a pickle)")


def load_generator(path_or_name: str | os.PathLike, device: str | torch.device = "auto") -> Generator:
    """A frozen generator in eval mode from a checkpoint path or a zoo name (see `genprior.io.zoo`)."""
    path = Path(path_or_name)
    zoo_name = None
    if not path.exists() and os.sep not in str(path_or_name) and not path.suffix:
        from . import zoo

        path = zoo.fetch(str(path_or_name))  # unknown names raise with close-name suggestions
        zoo_name = str(path_or_name)
    config, sd = read_checkpoint(path)
    G = build_from_state_dict(config, sd, str(path))
    G.zoo_name = zoo_name  # the zoo entry it came from (None for a path): picks default fusion nets, calibrations
    return G.eval().requires_grad_(False).to(resolve_device(device))


def build_from_state_dict(config: dict, sd: StateDict, source: str) -> Generator:
    """Build the generator ``config`` describes and load ``sd`` strictly; errors name what differs."""
    G = build_generator(config)
    expected = G.state_dict()
    missing = [k for k in expected if k not in sd]
    needs_w_avg = missing == ["mapping.w_avg"]
    if needs_w_avg:
        missing = []
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not fit a {config['family']} generator of this config: "
                              f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    bad = [f"{k}: {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
           if k in sd and sd[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"{source}: tensor shapes do not fit the config: {bad[:5]}")
    G.load_state_dict({k: v.to(expected[k].dtype) for k, v in sd.items()}, strict=not needs_w_avg)
    if needs_w_avg:
        warnings.warn(f"{source}: no w_avg stored; estimated it from 10,000 mapped samples", stacklevel=2)
        G.mapping.w_avg.copy_(convert.estimate_w_avg(G))
    return G


def save_native(G: Generator, path: str | os.PathLike, *, overwrite: bool = False,
                extra: dict[str, Any] | None = None) -> Path:
    """Write ``G`` as safetensors with its config in the metadata, atomically; never overwrites by default."""
    meta = {CONFIG_KEY: json.dumps(G.config), "genprior_version": __version__}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    tensors = {k: v.detach().contiguous().cpu() for k, v in G.state_dict().items()}
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


# ----------------------------------------------------------------------------- format readers
def _looks_like_safetensors(head: bytes) -> bool:
    n = int.from_bytes(head[:8], "little")
    return 0 < n < 100_000_000 and head[8:9] == b"{"


def _is_legacy_torch(path: Path) -> bool:
    """Legacy (non-zip) torch.save files start with a pickled magic number (read from 64 bytes, no globals)."""
    with open(path, "rb") as f:
        head = f.read(64)
    try:
        return restricted_loads(head, NO_GLOBALS, source=str(path)) == torch.serialization.MAGIC_NUMBER
    except Exception:  # anything else at the head: not a legacy torch file
        return False


def _read_safetensors(path: Path) -> tuple[dict, StateDict]:
    f = read_safetensors(path)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in f.tensors.items() if not k.startswith("fixture.")}
    if CONFIG_KEY in f.metadata:
        return f.json(CONFIG_KEY), sd
    return _config_from_state_dict(sd, str(path)), sd


def _from_torch_object(obj: Any, source: str) -> tuple[dict, StateDict]:
    if isinstance(obj, dict) and "g_ema" in obj:
        return convert.from_rosinality(obj, source)
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = {k.removeprefix("module."): v for k, v in obj.items()}
        return _config_from_state_dict(sd, source), sd
    raise CheckpointError(f"{source}: a torch file but not a generator state dict or rosinality checkpoint")


def _from_pickle(data: Any, source: str) -> tuple[dict, StateDict]:
    if isinstance(data, dict):
        return convert.from_nvlabs_pickle(data, source)
    if isinstance(data, tuple):
        return convert.from_tf_pickle(data, source)
    raise CheckpointError(f"{source}: a pickle, but not a StyleGAN2 network pickle")


def _config_from_state_dict(sd: StateDict, source: str) -> dict:
    if "mapping.fc0.weight" in sd and "synthesis.b4.const" in sd:
        return convert.infer_stylegan2_config(sd, source)
    if "layer0.conv.weight" in sd:
        return convert.infer_pggan_config(sd, source)
    if "main.0.weight" in sd:
        from ..generators.dcgan import dcgan_config_from_state_dict

        return {"family": "dcgan", "kwargs": dcgan_config_from_state_dict(sd)}
    raise CheckpointError(f"{source}: unknown architecture: the keys ({', '.join(list(sd)[:4])}, ...) match "
                          "no supported generator (StyleGAN2, PGGAN, DCGAN)")
