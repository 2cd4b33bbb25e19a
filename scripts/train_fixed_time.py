"""Train (or continue) a run for a fixed wall time, then write its snapshot and metrics into a folder.

Usage::

    python scripts/train_fixed_time.py DATA RUN_DIR RESULT_DIR --minutes 9 [--metrics-n 1000] \\
        -- --resolution 64 --kimg 100000 --snapshot-kimg 500 --recipe projected --batch auto --device cuda \\
           --holdout 1000 --mirror

Everything after ``--`` goes to ``genprior train DATA RUN_DIR`` unchanged (its options, e.g. ``--mirror``,
``--num-fp16-res``, ``--channels-last``); ``--max-minutes`` is set from ``--minutes`` minus the seconds this
script has already spent, so the last training step ends ``--minutes`` after the start (at most 9, the window
of a borrowed GPU); its snapshot (a few seconds) and the scoring follow. An existing run in RUN_DIR is
continued with the same settings.

RESULT_DIR then holds (each file written atomically; an existing ``metrics.json`` is refused unless
``--overwrite``):

* ``network.safetensors``: the run's newest G_ema (``genprior.load_generator`` reads it);
* ``samples.png``: its sample grid;
* ``metrics.json``: FD-VGG, precision and recall (`genprior.metrics.generative.evaluate_generator`, VGG16 relu5_3,
  k = 3) of ``--metrics-n`` samples against as many real images (the held-out ones when the run holds some out,
  else the training images), with the run's step, kimg, training hours, device and this call's wall time and
  throughput.

Scoring takes extra time after the training (seconds on a GPU; about a minute for 1000 64-px images on a CPU).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

MAX_MINUTES = 9.0


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" in argv:
        i = argv.index("--")
        own, train_args = argv[:i], argv[i + 1:]
    else:
        own, train_args = argv, []
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("result_dir", type=Path)
    ap.add_argument("--minutes", type=float, required=True, help=f"wall time, at most {MAX_MINUTES:g}")
    ap.add_argument("--metrics-n", type=int, default=1000, help="samples and real images scored")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier result in RESULT_DIR")
    args = ap.parse_args(own)
    if not 0 < args.minutes <= MAX_MINUTES:
        ap.error(f"--minutes must be in (0, {MAX_MINUTES:g}], not {args.minutes:g}")
    if args.metrics_n < 4:
        ap.error("--metrics-n must be at least 4 (precision / recall use 3 neighbours)")
    if "--max-minutes" in train_args:
        ap.error("give the time with --minutes, not --max-minutes after --")
    return args, train_args


def train_for(args: argparse.Namespace, train_args: list[str], started: float) -> None:
    """``genprior train DATA RUN_DIR ... --max-minutes <what is left>``; exits on its errors."""
    from genprior.cli import main

    left = args.minutes - (time.time() - started) / 60
    if left <= 0:
        sys.exit("error: the time budget was spent before training could start")
    argv = ["train", str(args.data), str(args.run_dir), *train_args, "--max-minutes", f"{left:.4f}"]
    try:
        main(argv, standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def score(args: argparse.Namespace, started: float, nimg_before: int) -> dict:
    """The metrics of the run's newest snapshot (see the module docstring)."""
    from genprior.io.checkpoints import load_generator
    from genprior.training.data import load_dataset, split_holdout
    from genprior.training.loop import load_training_checkpoint
    from genprior.metrics.generative import evaluate_generator

    state, _ = load_training_checkpoint(args.run_dir)
    cfg = state["config"]
    device = torch.device("cuda" if state.get("device") == "cuda" and torch.cuda.is_available() else "cpu")
    G = load_generator(args.run_dir / "network-latest.safetensors", device=device)
    real = load_dataset(args.data, resolution=G.resolution, channels=G.channels, log=None)
    real = split_holdout(real, cfg["holdout"])[1] if cfg.get("holdout") else real
    order = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(123))
    n = min(args.metrics_n, real.shape[0])
    wall = time.time() - started
    scores = evaluate_generator(G, real[order], n, device=device)
    kimg_call = (state["cur_nimg"] - nimg_before) / 1000
    return dict(scores, step=state["step"], kimg=state["kimg"], train_hours=state["train_sec"] / 3600,
                device=state.get("device"), real_images="held-out" if cfg.get("holdout") else "training",
                recipe=cfg.get("recipe", "stylegan2"), batch=cfg["batch"], kimg_this_call=kimg_call,
                train_wall_sec=wall, kimg_per_hour=kimg_call / max(wall, 1e-9) * 3600,
                score_sec=time.time() - started - wall, config=cfg)


def main(argv: list[str] | None = None) -> dict:
    started = time.time()
    args, train_args = parse(sys.argv[1:] if argv is None else argv)
    from genprior.io.atomic import atomic_path
    from genprior.training.loop import load_training_checkpoint

    if (args.result_dir / "metrics.json").exists() and not args.overwrite:
        sys.exit(f"error: {args.result_dir} holds a result already; pass --overwrite or another folder")
    before = load_training_checkpoint(args.run_dir) if args.run_dir.is_dir() else None
    train_for(args, train_args, started)
    metrics = score(args, started, before[0]["cur_nimg"] if before else 0)
    args.result_dir.mkdir(parents=True, exist_ok=True)
    for src, dst in (("network-latest.safetensors", "network.safetensors"),
                     (f"samples-{metrics['step']:08d}.png", "samples.png")):
        with atomic_path(args.result_dir / dst, overwrite=True) as tmp:
            shutil.copyfile(args.run_dir / src, tmp)
    with atomic_path(args.result_dir / "metrics.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{args.result_dir}: FD-VGG {metrics['fd_vgg']:.1f}  precision {metrics['precision']:.3f}  "
          f"recall {metrics['recall']:.3f}  at {metrics['kimg']:.1f} kimg ({metrics['kimg_per_hour']:.0f} kimg/h "
          f"this call)", flush=True)
    return metrics


if __name__ == "__main__":
    main()
