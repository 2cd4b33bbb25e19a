"""One training step: the networks and optimisers of a run, the G and D phases, and the EMA generator."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from . import run_state
from .batches import D_PHASE, G_PHASE, ChunkSampler
from .distributed import World
from .loss import GANLoss

__all__ = ["Nets", "train_step", "ema_update"]


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


def train_step(nets: Nets, loss: GANLoss, sampler: ChunkSampler, *, step: int, batch: int, batch_gpu: int,
               world: World, regularise: bool, fp16: bool = False) -> dict[str, torch.Tensor]:
    """A G step then a D step on ``batch`` images; returns the batch-mean statistics (device tensors).

    This process runs its ``batch / (batch_gpu * world.size)`` chunks of each phase, accumulating gradients;
    one collective per phase sums the gradients and statistics over processes. With fp16 blocks, NaN / inf
    gradients are replaced (by 0 / +-1e5) as the official training loop does.
    """
    rounds = batch // (batch_gpu * world.size)
    chunks = [world.rank * rounds + i for i in range(rounds)]
    gain = batch_gpu / batch
    stats: dict[str, torch.Tensor] = {}
    for phase, module, opt in ((G_PHASE, nets.G, nets.opt_G), (D_PHASE, nets.D, nets.opt_D)):
        nets.G.requires_grad_(phase == G_PHASE)
        nets.D.requires_grad_(phase == D_PHASE)
        opt.zero_grad(set_to_none=True)
        phase_stats: dict[str, torch.Tensor] = {}
        for c in chunks:
            chunk = sampler.draw(step, phase, c, batch_gpu)
            out = loss.g_backward(chunk, gain) if phase == G_PHASE else loss.d_backward(chunk, gain, regularise)
            for k, v in out.items():
                phase_stats[k] = phase_stats[k] + v if k in phase_stats else v
        params = [p for p in module.parameters() if p.requires_grad]
        if world.distributed:
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            world.sum_([p.grad for p in params] + [phase_stats[k] for k in sorted(phase_stats)])
        if fp16:
            for p in params:
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()
        stats.update(phase_stats)
    nets.G.requires_grad_(False)
    nets.D.requires_grad_(False)
    return stats


@torch.no_grad()
def ema_update(nets: Nets, ema_kimg: float, cur_nimg: int, batch: int, rampup: float) -> None:
    """G_ema <- lerp toward G with half-life ``min(ema_kimg, cur_nimg * rampup)``; buffers copied."""
    ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    for p_ema, p in zip(nets.G_ema.parameters(), nets.G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(nets.G_ema.buffers(), nets.G.buffers()):
        b_ema.copy_(b)
