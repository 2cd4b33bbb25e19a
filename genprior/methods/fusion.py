"""BIGPrior fusion: ``x̂ = φ⊙g + (1−φ)⊙d(y)``, a learned per-pixel (and per-channel) weight φ of the prior.

* y: the observation (colorization: 1-channel grey; in-painting: masked RGB, holes 0; denoising: noisy RGB);
* g: the generative (GAN-inversion) estimate of the clean image, RGB;
* d(y): the data term: y itself (the grey repeated to 3 channels for colorization), or for a net whose info
  says ``"data_term": "nl_means"`` (genprior's denoising nets) the observation's non-local means
  (`genprior.physics.denoising.classical_denoise`), which its caller passes as y;
* φ → 1 trusts the prior (hallucination), φ → 0 trusts the data.

Public images are in [0, 1]. As the official code, the fusion runs on images shifted by −0.5 (y, g and the
result in [−0.5, 0.5]) and 0.5 is added back to the result; φ is not shifted.

`FusionNet.load` reads the official checkpoints (``net_<epoch>.pth``: a legacy ``torch.save`` of a DataParallel
state dict, read with ``weights_only=True``; an official run folder with ``OURargs.txt``) and genprior's own
(``net_<epoch>.safetensors`` with the net's config in the metadata, or a training run folder).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import CheckpointError, GenpriorError
from ..physics.base import LEGACY_TASK_NAMES
from .fusion_nets import BoundedPhi, DnCNNPhi, build_phi_net

__all__ = ["FusionNet", "TASKS", "task_channels", "task_from_experiment", "data_term", "fuse",
           "read_official_state_dict", "CONFIG_KEY"]

TASKS = ("colorize", "inpaint", "denoise")
CONFIG_KEY = "genprior_bigprior"
_OFFICIAL_PREFIX = "module.backbone."


def task_channels(task: str) -> int:
    """Channels of the observation y for ``task``: 1 for colorization, 3 otherwise."""
    return 1 if check_task_name(task) == "colorize" else 3


def check_task_name(task: str) -> str:
    """The task name (older files' ``colorization`` -> ``colorize``, ...), or an error listing the known ones."""
    task = LEGACY_TASK_NAMES.get(task, task)
    if task not in TASKS:
        raise GenpriorError(f"unknown BIGPrior task {task!r}; expected one of {', '.join(TASKS)}")
    return task


def task_from_experiment(name: str) -> str:
    """The official rule on experiment names: 'col' → colorization, 'den' → denoising, else in-painting."""
    if "col" in name:
        return "colorize"
    if "den" in name:
        return "denoise"
    return "inpaint"


def data_term(y: torch.Tensor) -> torch.Tensor:
    """d(y): y, with a 1-channel grey repeated to 3 channels."""
    return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y


def fuse(phi: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``(1−φ)⊙d(y) + φ⊙g`` (the official expression; a 1-channel y broadcasts)."""
    return (1 - phi) * y + phi * g


def read_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The official ``net_<epoch>.pth`` as a state dict of `DnCNNPhi` (``module.backbone.`` stripped)."""
    path = Path(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # truncated files, pickles with disallowed globals, ...
        raise CheckpointError(f"{path}: not a readable torch state dict ({exc})") from None
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{path}: expected a state dict, got {type(sd).__name__}")
    out = {}
    for k, v in sd.items():
        for prefix in (_OFFICIAL_PREFIX, "backbone.", "module."):
            if k.startswith(prefix):
                k = k[len(prefix):]
                break
        out[k] = v
    if "dncnn.0.weight" not in out:
        raise CheckpointError(f"{path}: not a BIGPrior DnCNN φ-net (no 'dncnn.0.weight'; keys start with "
                              f"{sorted(sd)[:3]})")
    return out


def _dncnn_from_state_dict(sd: dict[str, torch.Tensor], source: str) -> DnCNNPhi:
    convs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"dncnn\.(\d+)\.weight", k))
                   and sd[k].ndim == 4)
    first = sd["dncnn.0.weight"]
    net = DnCNNPhi(in_channels=first.shape[1], layers=len(convs), features=first.shape[0])
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: the weights do not fit a DnCNN-{len(convs)} φ-net: {exc}") from None
    return net


def _latest(paths: list[Path], pattern: str) -> Path | None:
    best = None
    for p in paths:
        m = re.fullmatch(pattern, p.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return best[1] if best else None


class FusionNet:
    """A trained φ-net and the task it was trained for. ``model(y, g) -> (x̂, φ)``, images in [0, 1].

    ``task`` is "colorize", "inpaint", "denoise", or None when unknown (an official 3-channel
    ``.pth`` loaded without its run folder; then only the channel count is checked).
    """

    def __init__(self, net: torch.nn.Module, task: str | None, *, source: str = "", info: dict | None = None):
        if task is not None:
            task = check_task_name(task)
            if task_channels(task) != net.in_channels:
                raise GenpriorError(f"a {task!r} fusion net needs {task_channels(task)}-channel input, but this net "
                                    f"takes {net.in_channels}")
        self.net = net.eval()
        self.task = task
        self.in_channels: int = net.in_channels
        self.kind: str = net.kind
        self.source = source
        self.info = dict(info or {})

    def __repr__(self) -> str:
        return (f"FusionNet(net={self.kind!r}, task={self.task!r}, in_channels={self.in_channels}, "
                f"source={self.source!r})")

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> "FusionNet":
        self.net.to(device)
        return self

    def config(self) -> dict:
        return {**self.net.config(), "task": self.task}

    @property
    def data_term(self) -> str:
        """What this net fuses g with: "observation" (y itself, as the official nets) or "nl_means" (the
        observation's non-local means: `fusion_input` computes it)."""
        return str(self.info.get("data_term", "observation"))

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def load(cls, path_or_dir: str | os.PathLike, *, task: str | None = None) -> "FusionNet":
        """Load an official ``net_<e>.pth`` / run folder, or a genprior ``net_<e>.safetensors`` / run folder.

        A folder gives its latest epoch (``checkpoints/`` is searched too). ``task`` overrides the task read
        from the files (needed only for official 3-channel nets loaded without ``OURargs.txt``).
        """
        path = Path(path_or_dir)
        if not path.exists():
            raise CheckpointError(f"{path}: no such file or folder")
        if path.is_dir():
            files = list(path.iterdir()) + (list((path / "checkpoints").iterdir())
                                            if (path / "checkpoints").is_dir() else [])
            found = _latest(files, r"net_(\d+)\.safetensors") or _latest(files, r"net_(\d+)\.pth")
            if found is None:
                raise CheckpointError(f"{path}: no fusion net in this folder (expected net_<epoch>.safetensors "
                                      "or the official net_<epoch>.pth)")
            path = found
        if path.suffix == ".safetensors":
            return cls._load_native(path, task)
        return cls._load_official(path, task)

    @classmethod
    def _load_official(cls, path: Path, task: str | None) -> "FusionNet":
        net = _dncnn_from_state_dict(read_official_state_dict(path), str(path))
        info: dict = {"format": "official"}
        args_file = path.parent / "OURargs.txt"
        if args_file.is_file():
            try:
                args = json.loads(args_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CheckpointError(f"{args_file}: not a JSON argument dump ({exc})") from None
            info["args"] = args
            if args.get("extend_input"):
                raise CheckpointError(f"{path}: official nets with extend_input=True are not supported")
            found = task_from_experiment(str(args.get("experiment", "")))
        elif net.in_channels == 1:
            found = "colorize"
        else:
            m = re.fullmatch(r"(.+)_\d+", path.parent.name)
            found = task_from_experiment(m.group(1)) if m else None
        task = check_task_name(task) if task is not None else None
        if task is not None and found is not None and task != found:
            raise GenpriorError(f"{path} is a {found!r} fusion net, not a {task!r} one")
        return cls(net, task or found, source=str(path), info=info)

    @classmethod
    def _load_native(cls, path: Path, task: str | None) -> "FusionNet":
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            sd = load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
        if CONFIG_KEY not in meta:
            raise CheckpointError(f"{path}: no genprior BIGPrior config in its metadata")
        config = json.loads(meta[CONFIG_KEY])
        found = config.pop("task", None)
        info = config.pop("info", {})
        net = build_phi_net(config)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: the weights do not fit the {config.get('net')} φ-net: {exc}") from None
        task = check_task_name(task) if task is not None else None
        if task is not None and found is not None and task != found:
            raise GenpriorError(f"{path} is a {found!r} fusion net, not a {task!r} one")
        return cls(net, task or found, source=str(path), info={"format": "genprior", **info})

    def metadata(self, info: dict | None = None) -> dict[str, str]:
        return {CONFIG_KEY: json.dumps({**self.config(), "info": info or {}})}

    def save(self, path: str | os.PathLike, *, info: dict | None = None, overwrite: bool = False) -> Path:
        """Write the net as ``.safetensors`` with its config (readable by `load`); sets ``source`` to the file."""
        from safetensors.torch import save_file

        from ..io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path, overwrite=overwrite) as tmp:
            sd = {k: v.detach().contiguous().cpu() for k, v in self.net.state_dict().items()}
            save_file(sd, str(tmp), metadata=self.metadata(info))
        self.source = str(path)
        return path

    # ------------------------------------------------------------------ checks and inference
    def check(self, *, task: str | None = None, channels: int | None = None) -> None:
        """Raise `GenpriorError` naming both sides if data of ``task`` / ``channels`` do not fit this net."""
        if task is not None:
            task = check_task_name(task)
            if self.task is not None and task != self.task:
                raise GenpriorError(f"this fusion net was trained for {self.task!r} ({self.in_channels}-channel "
                                    f"input) but the data are for {task!r}")
        if channels is not None and channels != self.in_channels:
            what = repr(self.task) if self.task else "a 3-channel task"
            raise GenpriorError(f"this fusion net was trained for {what} with {self.in_channels}-channel "
                                f"observations, but the observation has {channels} channel(s)")

    def phi_and_fusion(self, y: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None = None,
                       *, task: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂ unclamped, φ raw) for y (N, C_y, H, W), g (N, 3, H, W) in [0, 1]; keeps the autograd graph."""
        if y.ndim == 3:
            y = y[None]
        if g.ndim == 3:
            g = g[None]
        if mask is not None and mask.ndim == 3:
            mask = mask[None]
        self.check(task=task, channels=y.shape[1])
        if g.ndim != 4 or g.shape[1] != 3:
            raise GenpriorError(f"the GAN estimate g must be RGB (N, 3, H, W), got shape {tuple(g.shape)}")
        if y.shape[0] != g.shape[0] or y.shape[-2:] != g.shape[-2:]:
            raise GenpriorError(f"observation {tuple(y.shape)} and GAN estimate {tuple(g.shape)} differ in "
                                "batch size or image size")
        dev = self.device
        ys, gs = y.to(dev, torch.float32) - 0.5, g.to(dev, torch.float32) - 0.5
        m = mask.to(dev, torch.float32) if mask is not None else None
        phi = self.net(ys, gs, m)
        return fuse(phi, ys, gs) + 0.5, phi

    def __call__(self, y: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None = None, *,
                 clamp: bool = True, task: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂, φ) without gradients: x̂ (N, 3, H, W) in [0, 1] (``clamp=False``: the raw fused float), φ raw.

        φ of the official net is unbounded (it may leave [0, 1]); `BoundedPhi`'s is in [0, 1].
        """
        with torch.no_grad():
            x, phi = self.phi_and_fusion(y, g, mask, task=task)
        return (x.clamp(0, 1) if clamp else x), phi


__all__ += ["DnCNNPhi", "BoundedPhi"]
