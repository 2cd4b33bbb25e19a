"""The optimisation loop every inversion method shares: per-image losses, summed, one optimiser step each."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..progress import progress as progress_bar
from .base import History


def lr_at(t: float, lr: float, schedule: str) -> float:
    """Learning rate at progress t in [0, 1]: constant, or 5 % linear warm-up + 25 % cosine ramp-down."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        ramp = min(1.0, (1.0 - t) / 0.25)
        return lr * min(1.0, t / 0.05) * (0.5 - 0.5 * math.cos(math.pi * ramp))
    raise ValueError(f"schedule must be 'constant' or 'cosine', not {schedule!r}")


def minimise(opt: torch.optim.Optimizer, loss_fn: Callable[[int], tuple[torch.Tensor, dict[str, torch.Tensor]]],
             steps: int, history: History, *, stage: str, lr: float | None = None, schedule: str = "constant",
             progress: bool = False, after_step: Callable[[int], None] | None = None,
             per_image: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
    """Run ``steps`` optimiser steps on ``loss_fn(step) -> (per-image losses (N,), terms)``.

    Images are independent problems, so their losses are summed for the backward pass. With ``lr`` set, the
    learning rate follows ``schedule`` (see `lr_at`). Every step is recorded in ``history`` under ``stage``
    (which raises `DivergenceError` on a non-finite loss); ``after_step(step)`` runs after each update
    (projections, renormalisation); ``per_image`` maps the losses to the (N,) per-image values the history and
    callback see (e.g. the best of several starts per image).
    """
    bar = progress_bar(range(steps), desc=stage, enabled=progress)
    for step in bar:
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step / max(steps - 1, 1), lr, schedule)
        losses, terms = loss_fn(step)
        if per_image is None:
            history.record(stage, step, losses, terms)
        else:
            history.record(stage, step, per_image(losses.detach()), {k: per_image(v.detach()) for k, v in terms.items()})
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        if after_step is not None:
            after_step(step)
        bar.set_postfix(loss=f"{history.loss[stage][-1]:.4g}")
