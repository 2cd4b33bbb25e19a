"""Train the fusion nets genprior ships: a BoundedPhi per (shipped generator, task) on training images' inversions.

Run: ``python scripts/train_fusion_nets.py --out /work/runs/fusion [--generators genprior-faces64,genprior-brain64]
[--tasks denoise,inpaint,colorize] [--images 32] [--epochs 40]``

For each generator and task: ``--images`` clean training images (faces: faces-utk64 without its last 1,000 files,
which the benchmarks hold out; brains: brain-mri64/train), evenly spread, are degraded with BIGPrior's blind
protocol (`genprior.methods.fusion_inversions.degrade`: σ uniform in [0.02, 0.2], a centred hole of 25-50 % of
the side, or the grey image for colorization) and inverted with the inversion ``genprior restore --method bigprior`` uses (`MGANPrior.preset`); a
BoundedPhi (genprior's bounded φ-net, which sees g and, for in-painting, the hole) is trained on those triples
and written as ``<out>/<generator>-<task>-fusion.safetensors`` with ``<out>/<generator>-<task>-fusion.json``
(data, inversion settings, epochs, final training loss, CPU seconds). A denoising net fuses g with the
observation's non-local means (``--denoise-data nl_means``, the default: it beats fusing with the noisy y) or, as
the official nets, with y itself (``observation``). Everything resumes: finished triples are
skipped and an unfinished training run continues from its last epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

import genprior
from genprior.io.atomic import atomic_path
from genprior.io.splits import split_files
from genprior.methods import FusionNet, MGANPrior
from genprior.methods.fusion_data import FusionTriples
from genprior.methods.fusion_inversions import HOLE_RANGE, SIGMA_RANGE, denoised_observations, make_triples
from genprior.methods.fusion_train import train_fusion
from genprior.paths import shared_dir


def training_files(shared: Path, generator: str, n: int) -> list[Path]:
    """n clean training images for a shipped generator, evenly spread over its training split."""
    try:
        return split_files(shared, generator, "train", n)
    except KeyError as exc:
        raise SystemExit(exc.args[0]) from None


def train_one(shared: Path, out: Path, generator: str, task: str, args: argparse.Namespace) -> Path:
    G = genprior.load_generator(generator, device="cpu")
    inversion = MGANPrior.preset(G, task, **({"steps": args.steps} if args.steps else {}))
    folder = out / generator / task
    files = training_files(shared, generator, args.images)
    target = out / f"{generator}-{task}-fusion.safetensors"
    record = target.with_suffix(".json")
    before = json.loads(record.read_text()) if record.is_file() else {}
    t0 = time.process_time()
    make_triples(G, files, task, folder / "triples", inversion=inversion, seed=args.seed, progress=True)
    t_inv = time.process_time() - t0 + before.get("cpu_seconds", {}).get("inversions", 0.0)  # earlier runs' too
    tri = folder / "triples"
    data_term = args.denoise_data if task == "denoise" else "observation"
    obs = denoised_observations(tri) if data_term == "nl_means" else tri / "obs"
    data = FusionTriples(obs, tri / "gan", tri / "gt", task=task,
                         masks=tri / "mask" if task == "inpaint" else None, augment=True)
    t0 = time.process_time()
    name = f"{task}_bounded" + ("_nlm" if data_term == "nl_means" else "")
    run = train_fusion(data, folder / "runs", net="bounded", task=task, name=name, epochs=args.epochs,
                       batch=8, seed=args.seed, progress=True, net_options={"use_mask": task == "inpaint"})
    t_train = time.process_time() - t0 + before.get("cpu_seconds", {}).get("training", 0.0)
    net = FusionNet.load(run)
    history = json.loads((run / "history.json").read_text())
    info = {"generator": generator, "task": task, "training_images": len(files),
            "data": "faces-utk64 (first files, held-out last 1,000 excluded)" if "faces" in generator
            else "brain-mri64/train",
            "degradation": {"denoise": f"Gaussian sigma uniform in {list(SIGMA_RANGE)}",
                            "inpaint": f"centred square hole, side fraction uniform in {list(HOLE_RANGE)}",
                            "colorize": "ITU-R 601 luma"}[task],
            "data_term": data_term, "inversion": {"method": inversion.name, **inversion.settings()}, "epochs": args.epochs,
            "seed": args.seed, "run": str(run), "cpu_seconds": {"inversions": t_inv, "training": t_train},
            "final_epoch": {k: v[-1] for k, v in history.items() if isinstance(v, list) and v}}
    net.save(target, info={"generator": generator, "data_term": data_term}, overwrite=True)
    with atomic_path(record, overwrite=True) as tmp:
        tmp.write_text(json.dumps(info, indent=1, default=str))
    print(f"wrote {target} ({os.path.getsize(target)} bytes)", flush=True)
    return target


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder (triples, runs, exported nets)")
    ap.add_argument("--generators", default="genprior-faces64,genprior-brain64")
    ap.add_argument("--tasks", default="denoise,inpaint")
    ap.add_argument("--images", type=int, default=32, help="training images per generator and task")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0, help="inversion steps (0: the preset's, as restore uses)")
    ap.add_argument("--denoise-data", choices=("nl_means", "observation"), default="nl_means",
                    help="what a denoising net fuses g with: the observation's non-local means, or y itself")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(args.threads)
    for generator in args.generators.split(","):
        for task in args.tasks.split(","):
            train_one(shared, args.out, generator, task, args)


if __name__ == "__main__":
    main()
