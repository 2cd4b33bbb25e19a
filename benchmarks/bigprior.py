"""BIGPrior benchmark: colorization on LSUN bedroom with the stored GAN estimates, and end to end on faces.

Run: ``python benchmarks/bigprior.py [--epochs 5] [--dncnn-epochs 2] [--crop 96] [--faces 24]``
(writes benchmarks/results/bigprior.{json,md}). ``--parts`` runs a subset; the other parts are kept from the
previous report, and each part records the command of the run it comes from.

Part 1 (LSUN bedroom, train 0..249, test 250..299, the official grey inputs and mGANprior estimates):
GAN estimate alone, the official fusion net (net_24.pth), a DnCNN-17 re-trained here, and genprior's
BoundedPhi (φ in [0, 1], sees g). Part 2: denoising and centre in-painting end to end on real held-out
images with the DCGAN face prior (faces) and genprior's shipped StyleGAN2 brain model (brain MRI): mGANprior
inversion (Adam) for g, a BoundedPhi trained on the training images' inversions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import genprior
from genprior.io.images import read_image, save_image
from genprior.methods import FusionNet, MGANPrior
from genprior.methods.bigprior_train import FusionTriples, test_fusion, train_fusion
from genprior.metrics import psnr, ssim
from genprior.paths import shared_dir
from genprior.physics import Denoising, Inpainting, center_mask

OUT = Path(__file__).parent / "results"


def colorization(shared: Path, work: Path, args) -> dict:
    d = shared / "data"
    folders = (d / "bigprior-col-bedroom" / "input", d / "bigprior-col-bedroom" / "mGANoutput", d / "lsun256" / "bedroom")
    test = FusionTriples(*folders, task="colorize", stems=range(250, 300))
    train = FusionTriples(*folders, task="colorize", stems=range(0, 250), crop=args.crop, augment=True)
    rows = {}
    official = test_fusion(FusionNet.load(d / "bigprior-nets" / "col_bedroom_1" / "net_24.pth"), test, work / "official",
                           progress=False)["mean"]
    rows["GAN estimate alone (mGANprior)"] = {"auc": official["auc_gan"], "psnr": official["psnr_gan"],
                                              "ssim": official["ssim_gan"]}
    rows["official BIGPrior (net_24.pth)"] = official
    for label, net, epochs in (("DnCNN-17 re-trained here", "dncnn", args.dncnn_epochs),
                               ("genprior BoundedPhi", "bounded", args.epochs)):
        t = time.perf_counter()
        run = train_fusion(train, work / "runs", net=net, task="colorize", name=f"col_{net}", epochs=epochs,
                           seed=0, progress=False)
        m = test_fusion(FusionNet.load(run), test, work / net, progress=False)["mean"]
        rows[f"{label} ({epochs} epochs, {args.crop}px crops)"] = {**m, "train_seconds": time.perf_counter() - t}
        print(label, m, flush=True)
    return rows


def real_images(shared: Path, prior: str, n_train: int, n_test: int) -> tuple[list[Path], list[Path]]:
    """Training and held-out test files for an end-to-end prior (faces: last 1,000 held out; brains: test split)."""
    if prior == "dcgan-digiface64":
        files = sorted((shared / "data" / "faces-utk64").iterdir())
        return files[:n_train], files[-1000:][:: 1000 // n_test][:n_test]
    train = sorted((shared / "data" / "brain-mri64" / "train").iterdir())
    test = sorted((shared / "data" / "brain-mri64" / "test").iterdir())
    return train[:: len(train) // n_train][:n_train], test[:: len(test) // n_test][:n_test]


END_TO_END = {"dcgan-digiface64": "real faces", "genprior-brain64": "real brain MRI"}


def end_to_end(shared: Path, work: Path, args, prior: str) -> dict:
    """Denoising and in-painting on real images: mGANprior inversion + a BoundedPhi trained on training inversions.

    Grey generators (the shipped StyleGAN2 brain model) go through the RGB fusion net with y, g and the truth
    repeated to 3 channels (what `genprior restore --method bigprior` does), so PSNR/SSIM equal the grey ones.
    """
    G = genprior.load_generator(prior, device="cpu")
    train_files, test_files = real_images(shared, prior, args.faces, args.test_faces)
    layer = {"layer": 3} if G.family == "dcgan" else {}  # StyleGAN2: the preset's block resolution
    rgb = lambda t: t.expand(-1, 3, -1, -1)  # noqa: E731
    work = work / prior
    out = {}
    for task, physics in (("denoise", Denoising(0.1)), ("inpaint", Inpainting(center_mask(64, 0.4)))):
        inv = MGANPrior.preset(G, task, steps=args.inversion_steps, **layer)
        for split, fs in (("train", train_files), ("test", test_files)):
            truth = torch.cat([read_image(f, channels=G.channels) for f in fs])
            y = physics(truth, seed=1 if split == "test" else 0)
            t = time.perf_counter()
            g = inv(y, physics, seed=0).mean
            sec = (time.perf_counter() - t) / len(fs)
            for sub, imgs in (("obs", y), ("gan", g), ("gt", truth)):
                for f, img in zip(fs, rgb(imgs)):
                    save_image(img, work / task / split / sub / f"{f.stem}.png", overwrite=True)
            if task == "inpaint":
                for f in fs:
                    save_image(physics.observed.float()[0], work / task / split / "mask" / f"{f.stem}.png",
                               overwrite=True)
            if split == "test":
                inversion_seconds = sec
        masks = (lambda s: work / task / s / "mask") if task == "inpaint" else (lambda s: None)
        train_set = FusionTriples(*(work / task / "train" / s for s in ("obs", "gan", "gt")), task=task,
                                  masks=masks("train"), augment=True)
        test_set = FusionTriples(*(work / task / "test" / s for s in ("obs", "gan", "gt")), task=task,
                                 masks=masks("test"))
        run = train_fusion(train_set, work / "runs", net="bounded", task=task, name=f"{task}_e2e",
                           epochs=args.epochs, batch=8, seed=0, progress=False,
                           net_options={"use_mask": task == "inpaint"})
        t = time.perf_counter()
        m = test_fusion(FusionNet.load(run), test_set, work / task / "fused", progress=False)["mean"]
        fusion_sec = (time.perf_counter() - t) / len(test_files)
        truth = torch.cat([read_image(work / task / "test" / "gt" / f"{f.stem}.png") for f in test_files])
        y = torch.cat([read_image(work / task / "test" / "obs" / f"{f.stem}.png") for f in test_files])
        out[task] = {"observation": {"psnr": float(psnr(y, truth).mean()), "ssim": float(ssim(y, truth).mean())},
                     "gan_estimate": {"psnr": m["psnr_gan"], "ssim": m["ssim_gan"]},
                     "bigprior_bounded": {"psnr": m["psnr"], "ssim": m["ssim"], "mean_phi": m["mean_phi"]},
                     "cpu_seconds_per_image": {"inversion": inversion_seconds, "fusion": fusion_sec},
                     "train_images": len(train_files), "test_images": len(test_files)}
        print(prior, task, out[task], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5, help="BoundedPhi epochs")
    ap.add_argument("--dncnn-epochs", type=int, default=2, help="re-trained DnCNN-17 epochs")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--faces", type=int, default=24, help="training images per end-to-end prior")
    ap.add_argument("--test-faces", type=int, default=8, help="held-out test images per end-to-end prior")
    ap.add_argument("--inversion-steps", type=int, default=200)
    ap.add_argument("--parts", default="colorize,dcgan-digiface64,genprior-brain64",
                    help="Comma-separated parts to run; the others are kept from the previous report.")
    args = ap.parse_args()
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - {"colorize", *END_TO_END})
    if unknown:
        sys.exit(f"unknown parts {unknown}; known: colorize, {', '.join(END_TO_END)}")
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    previous = json.loads((OUT / "bigprior.json").read_text()) if (OUT / "bigprior.json").exists() else {}
    command = "python benchmarks/bigprior.py " + " ".join(sys.argv[1:])
    report = {"command": command, "args": vars(args),
              "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1,
                          "cpus": os.cpu_count()}, "commands": {}}
    old_end_to_end = previous.get("end_to_end", {})
    if "end_to_end_faces" in previous:  # reports before the brain prior was added
        old_end_to_end = {"dcgan-digiface64": previous["end_to_end_faces"]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "colorize" in parts:
            report["colorization_bedroom"] = colorization(shared, work, args)
            report["commands"]["colorize"] = command
        else:
            report["colorization_bedroom"] = previous["colorization_bedroom"]
            report["commands"]["colorize"] = previous.get("commands", {}).get("colorize", previous["command"])
        report["end_to_end"] = {}
        for prior in END_TO_END:
            if prior in parts:
                report["end_to_end"][prior] = end_to_end(shared, work, args, prior)
                report["commands"][prior] = command
            elif prior in old_end_to_end:
                report["end_to_end"][prior] = old_end_to_end[prior]
                report["commands"][prior] = previous.get("commands", {}).get(prior, previous["command"])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bigprior.json").write_text(json.dumps(report, indent=2))
    lines = ["# BIGPrior benchmark", "", f"Command of the last run: `{report['command']}`; each part below names "
             "the run it comes from.", "",
             "## Colorization, LSUN bedroom test images 250..299 (stored official inputs and mGANprior estimates)", "",
             f"Run: `{report['commands']['colorize']}`.", "",
             "Paper: AuC 88.52 (GAN alone), 89.27 (FusionNet). PSNR/SSIM on outputs clamped to [0, 1].", "",
             "| method | AuC | PSNR | SSIM | mean φ |", "|---|---|---|---|---|"]
    for name, m in report["colorization_bedroom"].items():
        phi = f"{m['mean_phi']:.3f}" if "mean_phi" in m else "–"
        lines.append(f"| {name} | {m['auc']:.2f} | {m['psnr']:.2f} | {m['ssim']:.4f} | {phi} |")
    lines += ["", "## End to end on real held-out images (mGANprior inversion + BoundedPhi trained on training "
              "images' inversions)", "", "Denoising: Gaussian σ 0.1. In-painting: centre hole of 40 % of the side.", "",
              "| prior | images | run | task | observation PSNR / SSIM | GAN estimate | BIGPrior (bounded) | mean φ "
              "| CPU s/image (inversion, fusion) |", "|---|---|---|---|---|---|---|---|---|"]
    f = lambda m: f"{m['psnr']:.2f} / {m['ssim']:.3f}"  # noqa: E731
    for prior, tasks in report["end_to_end"].items():
        for task, r in tasks.items():
            c = r["cpu_seconds_per_image"]
            n = f"{r.get('train_images', r.get('train_faces'))} train / {r.get('test_images', r.get('test_faces'))} test"
            lines.append(f"| {prior} | {END_TO_END[prior]}, {n} | `{report['commands'][prior]}` | {task} "
                         f"| {f(r['observation'])} | {f(r['gan_estimate'])} | {f(r['bigprior_bounded'])} "
                         f"| {r['bigprior_bounded']['mean_phi']:.3f} | {c['inversion']:.1f}, {c['fusion']:.2f} |")
    (OUT / "bigprior.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
