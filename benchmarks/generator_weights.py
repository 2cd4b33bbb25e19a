"""Measure how much of each shipped generator's image a restoration should keep, per task, on TRAINING images.

Run: ``python benchmarks/generator_weights.py [--images 16] [--models genprior-faces64,genprior-brain64]``
(writes ``genprior/models/generator_weights.json``, read by `genprior.methods.trust`, and
``benchmarks/results/generator_weights.md``).

For each model and task the default MAP restoration runs once on images from the model's own training split
(faces-utk64: the first 9,000 files; brain-mri64/train), never the held-out images the benchmarks score; the
generator's image g is then blended with the data-only estimate d(y) before data consistency,
``consistent(w·g + (1 - w)·d(y))``, for w on a grid, and the w with the best mean PSNR is kept. The table records
each model file's sha256: a retrained model uses w = 1 until it is measured again.

The same fits give the misfit inflation κ per task (`genprior.methods.trust.measured_inflation`): the residual
variance τ² that VI and MCMC estimate from the fit's own residual (`misfit_variance`) is too small where the data
are silent, because the latent was fitted to the observed values. κ is the factor on τ² (on a grid of powers of
two) whose posterior samples (`posterior_sample`, around the chosen blend) have a mean per-pixel variance closest
to the squared error of their mean, on the same training images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import genprior
from genprior.io import zoo
from genprior.io.images import read_image
from genprior.io.splits import SPLITS, split_files
from genprior.methods import BRGM
from genprior.methods.brgm import apply_consistency
from genprior.methods.trust import TABLE, task_key
from genprior.methods.vi import generator_misfit
from genprior.metrics import psnr
from genprior.physics.consistency import blend, posterior_sample
from genprior.paths import shared_dir

from common import is_colour, task_physics  # noqa: E402  (benchmarks/common.py)

OUT = Path(__file__).parent / "results"
GRID = [round(w, 2) for w in np.linspace(0, 1, 11)]
INFLATION = [2.0 ** k for k in range(0, 11)]


def training_images(shared: Path, model: str, n: int) -> torch.Tensor:
    """n of the model's training images, evenly spread (`genprior.io.splits`)."""
    return torch.cat([read_image(f, channels=SPLITS[model].channels) for f in split_files(shared, model, "train", n)])


def misfit_inflation(G, res, y: torch.Tensor, physics, weight: float, truth: torch.Tensor,
                     draws: int = 8) -> tuple[float, dict[str, float]]:
    """(κ, variance / squared-error ratio per κ): the factor on the fit's own τ² that matches the posterior samples'
    variance to the error of their mean (VI's τ² comes from the generator's image without range extension)."""
    tau2 = generator_misfit(G, res.latent, res.noise or None, y, physics, float(physics.sigma), 1.0)
    x = blend(res.images["generated"], y, physics, weight)
    ratios = {}
    for k in INFLATION:
        gen = torch.Generator().manual_seed(0)
        s = torch.stack([posterior_sample(x, y, physics, tau2=tau2 * k, gen=gen).clamp(0, 1) for _ in range(draws)], 1)
        ratios[str(k)] = float(s.var(1).mean() / (s.mean(1) - truth).square().mean())
    best = min(INFLATION, key=lambda k: abs(np.log(max(ratios[str(k)], 1e-12))))
    return best, ratios


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--models", default=",".join(SPLITS))
    ap.add_argument("--tasks", default="sr4,sr8,inpaint,denoise,colorize")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(args.threads)
    table = {}  # the models measured now
    for model in args.models.split(","):
        G = genprior.load_generator(model, "cpu")
        truth = training_images(shared, model, args.images)
        weights, measured, inflation, ratios = {}, {}, {}, {}
        for task in args.tasks.split(","):
            images = truth
            if task == "colorize":
                if G.channels != 3:
                    continue
                images = truth[is_colour(truth)]
            physics = task_physics(task)
            y = physics(images, seed=0)
            res = BRGM(G, perceptual="vgg", generator_weight=1.0, consistency="none")(y, physics, seed=0)
            g = res.images["generated"]
            scores = [float(psnr(apply_consistency(g, y, physics, "soft", 1.0, w), images).mean()) for w in GRID]
            best = GRID[int(np.argmax(scores))]
            key = task_key(physics)
            weights[key], measured[key] = best, dict(zip(map(str, GRID), scores))
            inflation[key], ratios[key] = misfit_inflation(G, res, y, physics, best, images)
            print(model, key, best, [round(v, 2) for v in scores], "inflation", inflation[key], flush=True)
        table[model] = {"sha256": zoo.get_entry(model).sha256, "weights": weights, "psnr_by_weight": measured,
                        "misfit_inflation": inflation, "variance_ratio_by_inflation": ratios,
                        "images": int(truth.shape[0]), "split": "training",
                        "command": f"python benchmarks/generator_weights.py {' '.join(sys.argv[1:])}"}
    merged = json.loads(TABLE.read_text()) if TABLE.is_file() else {}  # another run may have written meanwhile
    for model, new in table.items():  # tasks measured now replace those of the same model file, others stay
        old = merged.get(model, {})
        if old.get("sha256") == new["sha256"]:
            for key in ("weights", "psnr_by_weight", "misfit_inflation", "variance_ratio_by_inflation"):
                new[key] = {**old.get(key, {}), **new[key]}
            new["command"] = "; ".join(dict.fromkeys(filter(None, [old.get("command"), new["command"]])))
        merged[model] = new
    TABLE.write_text(json.dumps(merged, indent=1) + "\n")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "generator_weights.md").write_text(markdown(merged))
    print(markdown(merged))


def markdown(table: dict) -> str:
    """The table of every measured model: mean PSNR per weight w, per task."""
    lines = ["# Generator weights (measured on training images)", "",
             "Mean PSNR (dB) of consistent(w·g + (1 - w)·d(y)) over training images, per weight w; the best is "
             "kept (`genprior/models/generator_weights.json`, read by `genprior.methods.trust`). Colorization skips "
             "training images that are already black and white (nothing to colorize; their PSNR is unbounded).", "",
             "| model | task | images | " + " | ".join(f"w={w}" for w in GRID) + " | chosen |",
             "|---|---|---|" + "---|" * (len(GRID) + 1)]
    for model, entry in table.items():
        for key, scores in entry["psnr_by_weight"].items():
            lines.append(f"| {model} | {key} | {entry['images']} | " + " | ".join(f"{v:.2f}" for v in scores.values())
                         + f" | {entry['weights'][key]} |")
    lines += ["", "Misfit inflation κ (the factor on VI's and MCMC's residual variance τ²): mean posterior-sample "
              "variance / squared error of their mean, per κ; the κ with the ratio closest to 1 is kept.", "",
              "| model | task | " + " | ".join(f"κ={k:g}" for k in INFLATION) + " | chosen |",
              "|---|---|" + "---|" * (len(INFLATION) + 1)]
    for model, entry in table.items():
        for key, ratios in entry.get("variance_ratio_by_inflation", {}).items():
            lines.append(f"| {model} | {key} | " + " | ".join(f"{v:.2f}" for v in ratios.values())
                         + f" | {entry['misfit_inflation'][key]:g} |")
    commands = sorted({e["command"] for e in table.values() if "command" in e})
    return "\n".join(lines + ["", "Commands: " + "; ".join(f"`{c}`" for c in commands)]) + "\n"


if __name__ == "__main__":
    main()
