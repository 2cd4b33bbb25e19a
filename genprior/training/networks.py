"""The networks of a run: G and D built from a run record, the EMA copy of G, and the two Adam optimisers."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from ..generators.stylegan2 import StyleGAN2Generator
from . import run_state
from .config import R1_RECIPES, TrainingConfig
from .discriminator import StyleGAN2Discriminator
from .distributed import World
from .projected import ProjectedDiscriminator, VisionAidedDiscriminator

__all__ = ["build_networks", "make_nets", "Nets", "R1_INTERVAL"]

R1_INTERVAL = 16  # steps between lazy R1 penalties (stylegan2 recipe); D's Adam is adjusted for it


def build_networks(cfg: dict[str, Any]) -> tuple[StyleGAN2Generator, torch.nn.Module]:
    """Freshly initialised (G, D) for a run record (`TrainingConfig.record`; the global torch RNG draws the
    weights). Keys missing from older records take their old defaults (no fp16, the StyleGAN2 discriminator)."""
    fp16 = {"num_fp16_res": cfg["num_fp16_res"], "conv_clamp": cfg["conv_clamp"]} if cfg.get("num_fp16_res") else {}
    G = StyleGAN2Generator(
        z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], img_resolution=cfg["resolution"], img_channels=cfg["channels"],
        mapping_kwargs={"num_layers": cfg["mapping_layers"]},
        synthesis_kwargs={"channel_base": cfg["g_channel_base"], "channel_max": cfg["g_channel_max"], **fp16},
    )
    recipe = cfg.get("recipe", "stylegan2")
    if recipe == "projected":
        return G, ProjectedDiscriminator(img_resolution=cfg["resolution"], img_channels=cfg["channels"],
                                         seed=cfg.get("seed", 0))
    D = StyleGAN2Discriminator(img_resolution=cfg["resolution"], img_channels=cfg["channels"],
                               channel_base=cfg["d_channel_base"], channel_max=cfg["d_channel_max"], **fp16)
    if recipe == "vision-aided":
        D = VisionAidedDiscriminator(D, ProjectedDiscriminator(img_resolution=cfg["resolution"],
                                                               img_channels=cfg["channels"], seed=cfg.get("seed", 0)))
    return G, D


@dataclass
class Nets:
    """G, D, the EMA generator and the two Adam optimisers (D's lr is ``lr * lr_ratio``)."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    lr_ratio: float = 1.0

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors of every module and optimiser, the optimisers' param groups for the checkpoint JSON)."""
        tensors: dict[str, torch.Tensor] = {}
        for prefix in ("G", "D", "G_ema"):
            tensors.update(run_state.module_tensors(prefix, getattr(self, prefix)))
        groups = {}
        for name in ("opt_G", "opt_D"):
            t, groups[f"{name}_groups"] = run_state.optimizer_tensors(getattr(self, name), name)
            tensors.update(t)
        return tensors, groups

    def load(self, tensors: dict[str, torch.Tensor], state: dict[str, Any], *, lr: float) -> None:
        """Restore what `state` saved; the learning rates become ``lr`` (and ``lr * lr_ratio`` for D)."""
        for prefix in ("G", "D", "G_ema"):
            run_state.load_module(getattr(self, prefix), tensors, prefix)
        for name, rate in (("opt_G", lr), ("opt_D", lr * self.lr_ratio)):
            opt = getattr(self, name)
            opt.load_state_dict(run_state.optimizer_state(tensors, name, state[f"{name}_groups"]))
            for group in opt.param_groups:
                group["lr"] = rate

    def copy(self) -> "Nets":
        """Independent copies of the networks with fresh optimisers of the same settings."""
        G, D = copy.deepcopy(self.G), copy.deepcopy(self.D)

        def fresh(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
            return type(opt)(params, **{k: v for k, v in opt.defaults.items() if k in ("lr", "betas", "eps")})

        return Nets(G, D, copy.deepcopy(self.G_ema), fresh(self.opt_G, list(G.parameters())),
                    fresh(self.opt_D, [p for p in D.parameters() if p.requires_grad]), self.lr_ratio)

    def finite(self) -> bool:
        """Whether every parameter of G, D and G_ema is finite (a host sync)."""
        params = [p for m in (self.G, self.D, self.G_ema) for p in m.parameters()]
        return bool(torch.stack([p.isfinite().all() for p in params]).all())


def make_nets(record: dict[str, Any], cfg: TrainingConfig, device: torch.device, world: World) -> Nets:
    """`Nets` for a run: weights drawn from ``cfg.seed`` (without touching the caller's global RNG state),
    moved to ``device`` (channels-last if asked), rank 0's copied to every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        G, D = build_networks(record)
    layout = torch.channels_last if cfg.channels_last else torch.preserve_format
    G, D = G.to(device, memory_format=layout).train(), D.to(device, memory_format=layout).train()
    world.broadcast_(G)
    world.broadcast_(D)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    ratio = R1_INTERVAL / (R1_INTERVAL + 1) if cfg.recipe in R1_RECIPES else 1.0
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.0, 0.99), eps=1e-8)
    opt_D = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=cfg.lr * ratio,
                             betas=(0.0, 0.99**ratio), eps=1e-8)
    return Nets(G, D, G_ema, opt_G, opt_D, lr_ratio=ratio)
