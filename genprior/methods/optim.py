"""The optimisation loop every inversion method shares: per-image losses, summed, one optimiser step each."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from tqdm.auto import tqdm


def lr_at(t: float, lr: float, schedule: str) -> float:
    """Learning rate at progress t in [0, 1]: constant, or 5 % linear warm-up + 25 % cosine ramp-down."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        ramp = min(1.0, (1.0 - t) / 0.25)
        return lr * min(1.0, t / 0.05) * (0.5 - 0.5 * math.cos(math.pi * ramp))
    raise ValueError(f"schedule must be 'constant' or 'cosine', not {schedule!r}")


def minimise(opt: torch.optim.Optimizer, loss_fn: Callable[[], tuple[torch.Tensor, Any]], steps: int, *,
             lr: float | None = None, schedule: str = "constant", desc: str = "", progress: bool = False,
             on_step: Callable[[int, torch.Tensor, Any], None] | None = None) -> list[float]:
    """Run ``steps`` optimiser steps on ``loss_fn() -> (per-image losses (N,), extra)``; returns the mean losses.

    Images are independent problems, so their losses are summed for the backward pass. With ``lr`` set, the
    learning rate follows ``schedule`` (see `lr_at`). ``on_step(step, losses, extra)`` sees every step.
    """
    history: list[float] = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step / max(steps - 1, 1), lr, schedule)
        losses, extra = loss_fn()
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        history.append(float(losses.detach().mean()))
        bar.set_postfix(loss=f"{history[-1]:.4g}")
        if on_step is not None:
            on_step(step, losses.detach(), extra)
    return history
