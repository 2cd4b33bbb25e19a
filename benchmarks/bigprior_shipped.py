"""BIGPrior with the shipped fusion nets, end to end on real held-out images, as `genprior restore --method bigprior`
runs it (the zoo's fusion net for the generator and task, mGANprior's default preset).

Run: ``python benchmarks/bigprior_shipped.py [--images 24] [--domains faces,brains]
[--tasks denoise,inpaint,denoise-blind,colorize]``
(writes ``benchmarks/results/bigprior-shipped.{json,md}`` and a montage per domain and task,
``benchmarks/results/bigprior-<domain>-<task>.png``: truth | observation | baseline | GAN estimate | BIGPrior | φ).
Rows are appended to ``bigprior-shipped-rows.jsonl`` as they finish; a rerun skips those already there for the
same fusion net file (by sha256), so the rows of a replaced net stay as its record (column d(y): what the net
fuses g with).

Images and forward models are the BRGM benchmark's (`common.real_images`, `common.task_physics`: denoising σ 0.1,
centre in-painting of 40 % of the side with σ 0.01, colorization of the held-out colour faces), so the rows
compare with ``brgm.md``. Per image: PSNR / SSIM /
perceptual of the observation, the task's strongest simple baseline (mean fill; grey; the best scikit-image denoiser at
the known σ, its parameter chosen on the test images), the GAN estimate g and BIGPrior's x; mean φ; the rank
correlation of φ with the GAN estimate's error |g - truth| (where the prior is wrong φ should be low: negative is
good) and the hallucinated part mean(φ·|g - truth|); seconds per image.

``denoise-blind`` is BIGPrior's blind protocol: each image's σ is drawn uniform in [0.02, 0.2] (seeded by its
index) and BIGPrior is given the σ that `estimate_sigma` finds in the image, as ``restore`` without ``--sigma``;
the baseline denoisers get the true σ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import genprior
from genprior.io import zoo
from genprior.io.download import file_sha256
from genprior.losses import PerceptualDistance
from genprior.methods import BIGPrior
from genprior.methods.fusion_inversions import degrade
from genprior.physics import Denoising, estimate_sigma
from genprior.result import Reconstruction

sys.path.insert(0, str(Path(__file__).parent))
from brgm import baselines, montage, scores  # noqa: E402
from common import DOMAINS, real_colour_images, real_images, start_run, task_physics  # noqa: E402
from uncertainty import spearman  # noqa: E402

OUT = Path(__file__).parent / "results"
ROWS = OUT / "bigprior-shipped-rows.jsonl"


def phi_scores(phi: torch.Tensor, g: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor | None) -> dict:
    """Mean φ, rank correlation of φ with |g - truth| (outside any hole, where φ is 1 by construction), and the
    hallucinated part mean(φ·|g - truth|); means over the images."""
    err = (g - truth).abs().mean(1, keepdim=True)
    p = phi.mean(1, keepdim=True)
    keep = torch.ones_like(p, dtype=torch.bool) if hole is None else hole[:, :1].expand_as(p) < 0.5
    corr = [spearman(p[i][keep[i]], err[i][keep[i]]) for i in range(p.shape[0])]
    return {"mean_phi": float(p.mean()), "rank_corr_phi_gan_error": float(sum(corr) / len(corr)),
            "hallucinated": float((p * err).mean())}


def blind_restore(method: BIGPrior, truth: torch.Tensor) -> tuple[torch.Tensor, Reconstruction, list]:
    """BIGPrior's blind protocol, one image at a time (image i's σ drawn by `degrade` with seed i): (noisy y,
    the restorations stacked, the baseline at the true σ (name, image) per image)."""
    ys, parts, base = [], [], []
    for i in range(truth.shape[0]):
        physics, _ = degrade("denoise", truth.shape[-1], i)
        y = physics(truth[i:i + 1], seed=i)
        parts.append(method(y, Denoising(float(estimate_sigma(y)[0])), seed=0))
        base.append(baselines("denoise", y, physics, truth[i:i + 1])["baseline"])
        ys.append(y)
    res = Reconstruction(mean=torch.cat([r.mean for r in parts]), phi=torch.cat([r.phi for r in parts]),
                         images={"gan_estimate": torch.cat([r.images["gan_estimate"] for r in parts])})
    return torch.cat(ys), res, base


def run(args, shared: Path, perceptual, done: set) -> None:
    for domain in args.domains:
        G = genprior.load_generator(DOMAINS[domain], "cpu")
        for task in args.tasks:
            if task == "colorize" and G.channels != 3:
                continue
            net_task = "denoise" if task == "denoise-blind" else task
            fusion = zoo.default_fusion(G, net_task)
            fusion_sha = file_sha256(fusion)
            if (domain, task, fusion_sha) in done:
                continue
            truth = (real_colour_images if task == "colorize" else real_images)(shared, domain, args.images)
            method = BIGPrior.preset(G, net_task, fusion)
            t0 = time.perf_counter()
            if task == "denoise-blind":
                y, res, per_image = blind_restore(method, truth)
                dt = (time.perf_counter() - t0) / truth.shape[0]
                names = sorted({name for name, _ in per_image})
                base = {"pseudo_inverse": ("observation", y.clamp(0, 1)),
                        "baseline": (" / ".join(names) + " (true σ)", torch.cat([b for _, b in per_image]))}
                hole = None
            else:
                physics = task_physics(task)
                y = physics(truth, seed=0)
                hole = (~physics.observed).float() if task == "inpaint" else None
                res = method(y, physics, seed=0)
                dt = (time.perf_counter() - t0) / truth.shape[0]
                base = baselines(task, y, physics, truth)
            g = res.images["gan_estimate"]
            row = {"domain": domain, "task": task, "n": truth.shape[0], "fusion": Path(fusion).name,
                   "fusion_sha256": fusion_sha, "data_term": method.fusion.data_term,
                   "inversion": method.settings()["inversion"], "seconds_per_image": dt,
                   "scores": {"observation": scores(base["pseudo_inverse"][1], truth, perceptual, hole),
                              "baseline": scores(base["baseline"][1], truth, perceptual, hole),
                              "gan_estimate": scores(g, truth, perceptual, hole),
                              "bigprior": scores(res.mean, truth, perceptual, hole)},
                   "baseline": base["baseline"][0], **phi_scores(res.phi, g, truth, hole),
                   "command": "python benchmarks/bigprior_shipped.py " + " ".join(sys.argv[1:])}
            with open(ROWS, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(domain, task, {k: round(v["psnr"]["mean"], 2) for k, v in row["scores"].items()},
                  f"{dt:.1f} s/img", flush=True)
            phi = res.phi.mean(1, keepdim=True).expand(-1, 3, -1, -1)
            montage([truth, base["pseudo_inverse"][1], base["baseline"][1], g, res.mean, phi],
                    OUT / f"bigprior-{domain}-{task}.png")


def brgm_map_psnr() -> dict[tuple[str, str], str]:
    """BRGM MAP's PSNR on the same real images per (domain, task), from the BRGM benchmark's rows (the last)."""
    path = OUT / "brgm-rows.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {(r["domain"], r["task"]): f"{r['scores']['psnr']['mean']:.2f}" for r in rows
            if (r["table"], r["images"], r["variant"]) == ("quality", "real", "map")}


def write_report() -> None:
    rows = [json.loads(line) for line in ROWS.read_text().splitlines()] if ROWS.exists() else []
    brgm = brgm_map_psnr()
    (OUT / "bigprior-shipped.json").write_text(json.dumps(rows, indent=1))
    f = lambda s: f"{s['psnr']['mean']:.2f} ± {s['psnr']['se']:.2f} / {s['ssim']['mean']:.3f}"  # noqa: E731
    lines = ["# BIGPrior with the shipped fusion nets (real held-out images)", "",
             "d(y): what the fusion net fuses g with (observation: y itself, as the official nets; nl_means: the "
             "observation's non-local means). denoise-blind: σ uniform in [0.02, 0.2] per image, BIGPrior given "
             "the σ estimated from the image, the baselines the true σ.", "",
             "As `genprior restore --method bigprior` runs it: the zoo's fusion net, mGANprior's default preset. "
             "PSNR ± standard error / SSIM; in-painting also PSNR inside the hole. φ: how much of each pixel came "
             "from the prior; corr(φ, err(g)): its rank correlation with the GAN estimate's error "
             "err(g) = |g - truth|, taken outside the hole (negative: φ is low where the prior is wrong); "
             "hallucinated: mean φ·err(g). "
             "Montages: truth | observation | baseline | GAN estimate | BIGPrior | φ.", "",
             "| domain | task | d(y) | n | observation | baseline | GAN estimate | BIGPrior | BIGPrior hole PSNR "
             "| BRGM MAP PSNR (brgm.md) | mean φ | corr(φ, err(g)) | hallucinated | s / image |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["scores"]
        hole = f"{s['bigprior']['psnr_hole']['mean']:.2f}" if "psnr_hole" in s["bigprior"] else "–"
        lines.append(f"| {r['domain']} | {r['task']} | {r.get('data_term', 'observation')} | {r['n']} "
                     f"| {f(s['observation'])} | {f(s['baseline'])} ({r['baseline']}) | {f(s['gan_estimate'])} "
                     f"| {f(s['bigprior'])} | {hole} "
                     f"| {brgm.get((r['domain'], r['task']), '–')} "
                     f"| {r['mean_phi']:.3f} "
                     f"| {r['rank_corr_phi_gan_error']:.2f} | {r['hallucinated']:.4f} | {r['seconds_per_image']:.1f} |")
    commands = sorted({r["command"] for r in rows})
    lines += ["", "Rows from: " + "; ".join(f"`{c}`" for c in commands) + f" (torch {torch.__version__}, 1 thread; "
              "the 2-core machine is shared, so seconds are indicative)."]
    (OUT / "bigprior-shipped.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24, help="real held-out images per domain")
    ap.add_argument("--domains", default="faces,brains")
    ap.add_argument("--tasks", default="denoise,inpaint")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.domains, args.tasks = args.domains.split(","), args.tasks.split(",")
    if not args.report_only:
        shared = start_run(ROWS, args.threads, fresh=False)
        rows = map(json.loads, ROWS.read_text().splitlines()) if ROWS.exists() else []
        done = {(r["domain"], r["task"], r.get("fusion_sha256")) for r in rows if r["n"] == args.images}
        run(args, shared, PerceptualDistance(size=64), done)
    write_report()


if __name__ == "__main__":
    main()
