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
             per_image: Callable[[torch.Tensor], torch.Tensor] | None = None,
             until: Callable[[torch.Tensor], bool] | None = None) -> int:
    """Run ``steps`` optimiser steps on ``loss_fn(step) -> (per-image losses (N,), terms)``.

    Images are independent problems, so their losses are summed for the backward pass. With ``lr`` set, the
    learning rate follows ``schedule`` (see `lr_at`). Every step is recorded in ``history`` under ``stage``
    (which raises `DivergenceError` on a non-finite loss); ``after_step(step)`` runs after each update
    (projections, renormalisation); ``per_image`` maps the losses to the (N,) per-image values the history and
    callback see (e.g. the best of several starts per image); ``until(per-image losses)`` -> True stops early
    (see `Plateau`). Returns the number of steps run.
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
        if until is not None and until(losses.detach()):
            return step + 1
    return steps


class Plateau:
    """``Plateau(tol, patience)(losses) -> bool``: True once no image's best loss (N,) has fallen by more than
    the fraction ``tol`` over the last ``patience`` calls (checked every ``patience`` calls).

    >>> stop = Plateau(0.01, patience=2)
    >>> [stop(torch.tensor([v])) for v in (4.0, 2.0, 1.0, 0.999, 0.999, 0.999)]
    [False, False, False, False, False, True]
    """

    def __init__(self, tol: float, patience: int) -> None:
        if not tol > 0 or isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"Plateau needs tol > 0 and an integer patience >= 1, got {tol!r}, {patience!r}")
        self.tol, self.patience = tol, patience
        self.calls = 0
        self.best: torch.Tensor | None = None
        self.mark: torch.Tensor | None = None

    def __call__(self, losses: torch.Tensor) -> bool:
        self.best = losses.clone() if self.best is None else torch.minimum(self.best, losses)
        self.calls += 1
        if self.calls % self.patience:
            return False
        mark, self.mark = self.mark, self.best.clone()
        return mark is not None and bool(((mark - self.best) <= self.tol * mark).all())
