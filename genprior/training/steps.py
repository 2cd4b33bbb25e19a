"""One training step, its G and D phases on this process's chunks, and the EMA generator."""

from __future__ import annotations

import torch

from .batches import D_PHASE, G_PHASE, ChunkSampler
from .distributed import World
from .loss import GANLoss
from .networks import Nets

__all__ = ["train_step", "ema_update"]


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
