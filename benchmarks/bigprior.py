"""BIGPrior benchmark: colorization on LSUN bedroom with the stored GAN estimates, and end to end on faces.

Run: ``python benchmarks/bigprior.py [--epochs 5] [--dncnn-epochs 2] [--crop 96] [--faces 24]``
(writes benchmarks/results/bigprior.{json,md}; all numbers from one run).

Part 1 (LSUN bedroom, train 0..249, test 250..299, the official grey inputs and mGANprior estimates):
GAN estimate alone, the official fusion net (net_24.pth), a DnCNN-17 re-trained here, and genprior's
BoundedPhi (φ in [0, 1], sees g). Part 2: denoising and centre in-painting end to end with the DCGAN face
prior on real faces: mGANprior inversion (Adam) for g, a BoundedPhi trained on the training faces' inversions.
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
from genprior.methods import BIGPrior, MGANPrior
from genprior.methods.bigprior_train import FusionTriples, test_fusion, train_fusion
from genprior.metrics import psnr, ssim
from genprior.paths import shared_dir
from genprior.physics import Denoising, Inpainting, center_mask

OUT = Path(__file__).parent / "results"


def colorization(shared: Path, work: Path, args) -> dict:
    d = shared / "data"
    folders = (d / "bigprior-col-bedroom" / "input", d / "bigprior-col-bedroom" / "mGANoutput", d / "lsun256" / "bedroom")
    test = FusionTriples(*folders, task="colorization", stems=range(250, 300))
    train = FusionTriples(*folders, task="colorization", stems=range(0, 250), crop=args.crop, augment=True)
    rows = {}
    official = test_fusion(BIGPrior.load(d / "bigprior-nets" / "col_bedroom_1" / "net_24.pth"), test, work / "official",
                           progress=False)["mean"]
    rows["GAN estimate alone (mGANprior)"] = {"auc": official["auc_gan"], "psnr": official["psnr_gan"],
                                              "ssim": official["ssim_gan"]}
    rows["official BIGPrior (net_24.pth)"] = official
    for label, net, epochs in (("DnCNN-17 re-trained here", "dncnn", args.dncnn_epochs),
                               ("genprior BoundedPhi", "bounded", args.epochs)):
        t = time.perf_counter()
        run = train_fusion(train, work / "runs", net=net, task="colorization", name=f"col_{net}", epochs=epochs,
                           seed=0, progress=False)
        m = test_fusion(BIGPrior.load(run), test, work / net, progress=False)["mean"]
        rows[f"{label} ({epochs} epochs, {args.crop}px crops)"] = {**m, "train_seconds": time.perf_counter() - t}
        print(label, m, flush=True)
    return rows


def faces(shared: Path) -> list[Path]:
    return sorted((shared / "data" / "faces-utk64").iterdir())


def end_to_end(shared: Path, work: Path, args) -> dict:
    """Denoising and in-painting on real faces with the DCGAN prior: inversion + a fusion net trained here."""
    G = genprior.load_generator("dcgan-digiface64", device="cpu")
    files = faces(shared)
    train_files, test_files = files[: args.faces], files[-1000:][:: 1000 // args.test_faces][: args.test_faces]
    out = {}
    for task, physics in (("denoise", Denoising(0.1)), ("inpaint", Inpainting(center_mask(64, 0.4)))):
        inv = MGANPrior.preset(G, task, layer=3, steps=args.inversion_steps)
        for split, fs in (("train", train_files), ("test", test_files)):
            truth = torch.cat([read_image(f, channels=3) for f in fs])
            y = physics(truth, seed=1 if split == "test" else 0)
            t = time.perf_counter()
            g = inv(y, physics, seed=0).mean
            sec = (time.perf_counter() - t) / len(fs)
            for sub, imgs in (("obs", y), ("gan", g), ("gt", truth)):
                for f, img in zip(fs, imgs):
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
        run = train_fusion(train_set, work / "runs", net="bounded", task=task, name=f"{task}_faces",
                           epochs=args.epochs, batch=8, seed=0, progress=False,
                           net_options={"use_mask": task == "inpaint"})
        t = time.perf_counter()
        m = test_fusion(BIGPrior.load(run), test_set, work / task / "fused", progress=False)["mean"]
        fusion_sec = (time.perf_counter() - t) / len(test_files)
        truth = torch.cat([read_image(work / task / "test" / "gt" / f"{f.stem}.png") for f in test_files])
        y = torch.cat([read_image(work / task / "test" / "obs" / f"{f.stem}.png") for f in test_files])
        out[task] = {"observation": {"psnr": float(psnr(y, truth).mean()), "ssim": float(ssim(y, truth).mean())},
                     "gan_estimate": {"psnr": m["psnr_gan"], "ssim": m["ssim_gan"]},
                     "bigprior_bounded": {"psnr": m["psnr"], "ssim": m["ssim"], "mean_phi": m["mean_phi"]},
                     "cpu_seconds_per_image": {"inversion": inversion_seconds, "fusion": fusion_sec},
                     "train_faces": len(train_files), "test_faces": len(test_files)}
        print(task, out[task], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5, help="BoundedPhi epochs")
    ap.add_argument("--dncnn-epochs", type=int, default=2, help="re-trained DnCNN-17 epochs")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--faces", type=int, default=24, help="training faces for the end-to-end part")
    ap.add_argument("--test-faces", type=int, default=8)
    ap.add_argument("--inversion-steps", type=int, default=200)
    args = ap.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = {"command": "python benchmarks/bigprior.py " + " ".join(sys.argv[1:]), "args": vars(args),
                  "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1,
                              "cpus": os.cpu_count()},
                  "colorization_bedroom": colorization(shared, work, args), "end_to_end_faces": end_to_end(shared, work, args)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bigprior.json").write_text(json.dumps(report, indent=2))
    lines = ["# BIGPrior benchmark", "", f"Command: `{report['command']}`.", "",
             "## Colorization, LSUN bedroom test images 250..299 (stored official inputs and mGANprior estimates)", "",
             "Paper: AuC 88.52 (GAN alone), 89.27 (BIGPrior). PSNR/SSIM on outputs clamped to [0, 1].", "",
             "| method | AuC | PSNR | SSIM | mean φ |", "|---|---|---|---|---|"]
    for name, m in report["colorization_bedroom"].items():
        phi = f"{m['mean_phi']:.3f}" if "mean_phi" in m else "–"
        lines.append(f"| {name} | {m['auc']:.2f} | {m['psnr']:.2f} | {m['ssim']:.4f} | {phi} |")
    lines += ["", "## End to end on real faces (DCGAN face prior; mGANprior inversion + BoundedPhi trained here)", "",
              "| task | observation PSNR / SSIM | GAN estimate | BIGPrior (bounded) | mean φ | CPU s/image (inversion, fusion) |",
              "|---|---|---|---|---|---|"]
    for task, r in report["end_to_end_faces"].items():
        f = lambda m: f"{m['psnr']:.2f} / {m['ssim']:.3f}"  # noqa: E731
        c = r["cpu_seconds_per_image"]
        lines.append(f"| {task} | {f(r['observation'])} | {f(r['gan_estimate'])} | {f(r['bigprior_bounded'])} "
                     f"| {r['bigprior_bounded']['mean_phi']:.3f} | {c['inversion']:.1f}, {c['fusion']:.2f} |")
    (OUT / "bigprior.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
