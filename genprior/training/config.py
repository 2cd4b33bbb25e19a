"""The settings of a training run: one validated dataclass, and the record a checkpoint keeps of it.

`TrainingConfig` holds what `genprior.training.loop.train` takes; constructing it checks every value and
raises `TrainingError` naming the bad one, before any data is read. `TrainingConfig.resolved` fills the
defaults that depend on the data and the machine (channels, batch "auto", fp16 blocks, lr, R1 weight, EMA),
and `record` is the JSON dict a checkpoint stores. A resume compares the stored record with the new one:

* ``ARCH_KEYS`` define the networks and the data stream; a difference refuses the resume;
* ``TUNABLE_KEYS`` (learning rate, R1 weight, EMA, ADA speed, chunk size) may change between calls, with a
  notice: a run whose losses diverged can go on from its last snapshot with a lower ``lr``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import GenpriorError
from .augment import DEFAULT_POLICY, check_policy
from .data import check_resolution
from .projected import MIN_RESOLUTION as PROJECTED_MIN_RESOLUTION

__all__ = ["TrainingConfig", "TrainingError", "ARCH_KEYS", "TUNABLE_KEYS", "RECIPES", "R1_RECIPES", "check_resume"]

RECIPES = ("stylegan2", "projected", "vision-aided")
RECIPE_LR = {"stylegan2": 0.0025, "projected": 0.0002, "vision-aided": 0.0025}
R1_RECIPES = ("stylegan2", "vision-aided")  # the recipes with StyleGAN2's discriminator and its lazy R1
FP16_CONV_CLAMP = 256.0  # StyleGAN2-ADA's conv_clamp wherever fp16 blocks are used
FP16_RES_CUDA = 4  # StyleGAN2-ADA's num_fp16_res of its 'auto' / paper configs

ARCH_KEYS = ("resolution", "channels", "batch", "g_channel_base", "g_channel_max", "d_channel_base",
             "d_channel_max", "z_dim", "w_dim", "mapping_layers", "recipe", "augment", "adaptive", "mirror",
             "seed", "holdout", "num_fp16_res", "init_generator")
TUNABLE_KEYS = ("lr", "r1_gamma", "ema_kimg", "ada_target", "ada_kimg", "batch_gpu")
# values of keys that runs written before the key existed had
LEGACY_DEFAULTS: dict[str, Any] = {"recipe": "stylegan2", "adaptive": False, "num_fp16_res": 0, "ada_target": 0.6,
                                   "ada_kimg": 500.0, "init_generator": None}


class TrainingError(GenpriorError):
    """A training run cannot start or resume as asked."""


def _positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "an integer" if integer else "a number"
        raise TrainingError(f"{name} must be {kind} {'>= 0' if allow_zero else '> 0'}, not {value!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that shapes a run; see `genprior.training.loop.train` for the meaning of each field.

    ``batch`` is an int or "auto" (largest batch the GPU's free memory holds, up to ``AUTO_BATCH_MAX``; 16 on
    a CPU). ``batch_gpu``: images per forward pass on each process (None: the whole share of the batch);
    smaller values accumulate gradients over several passes, so one process reproduces several.
    ``num_fp16_res`` None: 4 on CUDA, 0 elsewhere. ``lr`` None: the recipe's (0.0025 stylegan2 and
    vision-aided, 0.0002 projected). ``augment``: "diffaugment", "ada", "none" or a DiffAugment policy like
    "translation,cutout". ``init_generator``: a native generator file (``network-*.safetensors``, a shipped
    model) whose weights start G and G_ema of a new run (fine-tuning; D starts fresh); it must have this
    run's architecture.
    """

    resolution: int
    kimg: float
    channels: int | None = None
    batch: int | str = 16
    batch_gpu: int | None = None
    g_channel_base: int = 4096
    g_channel_max: int = 128
    d_channel_base: int = 4096
    d_channel_max: int = 128
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    recipe: str = "stylegan2"
    lr: float | None = None
    r1_gamma: float | None = None
    ema_kimg: float | None = None
    augment: str = "diffaugment"
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    mirror: bool = False
    snapshot_kimg: float = 2.0
    seed: int = 0
    holdout: int = 0
    device: str = "auto"
    num_fp16_res: int | None = None
    channels_last: bool = False
    num_threads: int | None = None
    max_sec: float | None = None
    keep_checkpoints: int = 2
    init_generator: str | None = None

    def __post_init__(self) -> None:
        check_resolution(self.resolution)
        if self.channels not in (None, 1, 3):
            raise TrainingError(f"channels must be 1 (grey) or 3 (RGB), not {self.channels!r}")
        if self.batch != "auto":
            _positive("batch", self.batch, integer=True)
        if self.batch_gpu is not None:
            _positive("batch_gpu", self.batch_gpu, integer=True)
            if isinstance(self.batch, int) and self.batch % self.batch_gpu:
                raise TrainingError(f"batch ({self.batch}) must be a multiple of batch_gpu ({self.batch_gpu})")
        for name in ("g_channel_base", "g_channel_max", "d_channel_base", "d_channel_max", "z_dim", "w_dim",
                     "mapping_layers", "keep_checkpoints"):
            _positive(name, getattr(self, name), integer=True)
        _positive("kimg", self.kimg)
        _positive("snapshot_kimg", self.snapshot_kimg)
        _positive("ada_kimg", self.ada_kimg)
        for name in ("lr", "ema_kimg", "max_sec", "num_threads"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name), integer=name == "num_threads")
        if self.r1_gamma is not None:
            _positive("r1_gamma", self.r1_gamma, allow_zero=True)
        _positive("holdout", self.holdout, integer=True, allow_zero=True)
        if self.num_fp16_res is not None:
            _positive("num_fp16_res", self.num_fp16_res, integer=True, allow_zero=True)
        if not 0 <= self.ada_target <= 1:
            raise TrainingError(f"ada_target must be in [0, 1], not {self.ada_target!r}")
        if self.recipe not in RECIPES:
            raise TrainingError(f"unknown recipe {self.recipe!r}; known: {', '.join(RECIPES)}")
        if self.recipe == "projected" and self.r1_gamma:
            raise TrainingError("the projected recipe uses no R1 penalty; leave r1_gamma unset")
        if self.recipe in ("projected", "vision-aided") and self.resolution < PROJECTED_MIN_RESOLUTION:
            raise TrainingError(f"the {self.recipe} recipe needs resolution >= {PROJECTED_MIN_RESOLUTION} (its "
                                f"coarsest features are at 1/8 of it), not {self.resolution}")
        if self.device not in ("auto", "cpu", "mps") and not self.device.startswith("cuda"):
            raise TrainingError(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        try:
            self.policy  # noqa: B018 - validates the augmentation
        except ValueError as exc:
            raise TrainingError(f"augment: {exc}") from None

    # ------------------------------------------------------------------ derived values
    @property
    def adaptive(self) -> bool:
        return self.augment == "ada"

    @property
    def policy(self) -> str:
        """The DiffAugment policy ("" for none)."""
        return check_policy({"diffaugment": DEFAULT_POLICY, "ada": DEFAULT_POLICY, "none": ""}.get(self.augment,
                                                                                                 self.augment))

    @property
    def conv_clamp(self) -> float | None:
        return FP16_CONV_CLAMP if self.num_fp16_res else None

    def resolved(self, *, channels: int, device_type: str, batch: int | None = None,
                 world_size: int = 1) -> "TrainingConfig":
        """A copy with every None / "auto" filled: ``batch`` is the measured batch when ``self.batch`` is "auto"."""
        total = self.batch if self.batch != "auto" else batch
        if total is None:
            raise TrainingError("batch 'auto' needs a measured batch")
        if total % world_size:
            raise TrainingError(f"batch ({total}) must be a multiple of the number of processes ({world_size})")
        batch_gpu = self.batch_gpu or total // world_size
        if total % (batch_gpu * world_size):
            raise TrainingError(f"batch ({total}) must be a multiple of batch_gpu x processes "
                                f"({batch_gpu} x {world_size})")
        fp16 = self.num_fp16_res if self.num_fp16_res is not None else (FP16_RES_CUDA if device_type == "cuda" else 0)
        return dataclasses.replace(
            self, channels=channels, batch=total, batch_gpu=batch_gpu, num_fp16_res=fp16,
            lr=self.lr if self.lr is not None else RECIPE_LR[self.recipe],
            r1_gamma=float(self.r1_gamma if self.r1_gamma is not None else
                           (0.0 if self.recipe not in R1_RECIPES else 0.0002 * self.resolution**2 / total)),
            ema_kimg=float(self.ema_kimg if self.ema_kimg is not None else total * 10 / 32))

    def record(self, *, data: str, num_images: int) -> dict[str, Any]:
        """The JSON dict a checkpoint stores (the keys of older runs kept: ``augment`` is the policy)."""
        keys = ARCH_KEYS + TUNABLE_KEYS
        out: dict[str, Any] = {"data": data}
        for k in keys:
            out[k] = self.policy if k == "augment" else getattr(self, k)
        out.update(conv_clamp=self.conv_clamp, num_images=num_images)
        return out


def check_resume(old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
    """Compare a stored run record with a new one: `TrainingError` listing architecture differences, else one
    notice per tunable that changed (empty when nothing did)."""
    def get(rec: dict[str, Any], k: str) -> Any:
        return rec.get(k, LEGACY_DEFAULTS.get(k, rec.get("batch") if k == "batch_gpu" else None))

    diff = {k: (get(old, k), new[k]) for k in ARCH_KEYS if get(old, k) != new[k]}
    if diff:
        listed = ", ".join(f"{k}: {a!r} in the run, {b!r} now" for k, (a, b) in diff.items())
        raise TrainingError(f"{where} holds a run with another configuration ({listed}); use the same settings "
                            "to resume it, or another out_dir")
    return [f"{k} is {new[k]!r} from here on (the run used {get(old, k)!r})"
            for k in TUNABLE_KEYS if get(old, k) is not None and get(old, k) != new[k]]
