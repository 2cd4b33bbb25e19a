"""Measured generator weights: how much of a shipped generator's image a restoration keeps, per task.

A restoration's point estimate is ``consistent(w·G + (1 - w)·d(y))`` (`genprior.physics.consistency.blend`),
d(y) the data-only estimate (bicubic, mean fill, non-local means, ...). For a strong prior w = 1. A weak prior
(the small CPU-trained models shipped here) reproduces real images poorly, and keeping all of its detail loses to
bicubic interpolation; the weight that maximises PSNR on the model's TRAINING images (never the held-out
ones) is measured per task by ``python benchmarks/generator_weights.py`` and stored in
``genprior/models/generator_weights.json`` with the model file's sha256, so a retrained model falls back to 1
until it is measured again. Any other generator uses 1 unless a weight is given. The same table keeps the
misfit inflation κ per task (`measured_inflation`), which scales the residual variance of the posterior
samples (VI, MCMC).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..physics import Physics, SuperResolution

TABLE = Path(__file__).resolve().parent.parent / "models" / "generator_weights.json"


def task_key(physics: Physics) -> str:
    """The task of a forward model in genprior's one task vocabulary (the physics' name), with the factor for
    super-resolution: "superres-x4", "inpaint", "denoise", "colorize"."""
    if isinstance(physics, SuperResolution):
        return f"superres-x{physics.factor}"
    return physics.name


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE.read_text()) if TABLE.is_file() else {}


def _measured(G: object, physics: Physics, table: str) -> float:
    """The value in ``table`` ("weights", "misfit_inflation") for a zoo generator (by name, file sha256 checked)
    and task; 1 otherwise."""
    name = getattr(G, "zoo_name", None)
    entry = _table().get(name or "")
    if not entry:
        return 1.0
    from ..io import zoo

    if zoo.get_entry(name).sha256 != entry.get("sha256"):
        return 1.0
    return float(entry.get(table, {}).get(task_key(physics), 1.0))


def measured_weight(G: object, physics: Physics) -> float:
    """The measured generator weight w for a zoo generator and task; 1 otherwise."""
    return _measured(G, physics, "weights")


def measured_inflation(G: object, physics: Physics) -> float:
    """How much larger the generator's misfit is where the data are silent (an in-painting hole, detail below
    a super-resolution factor) than the fit's own residual says, measured per zoo generator and task as the
    factor κ on τ² that makes the posterior's variance match the squared error on training images; 1 otherwise.
    A latent fitted to the observed values reproduces them better than the values it never saw."""
    return _measured(G, physics, "misfit_inflation")
