"""BRGM benchmark on real held-out images and on images the generator made, against the strongest simple baselines.

Run: ``python benchmarks/brgm.py [--images 24] [--generated 8] [--domains faces,brains]
[--tasks sr4,sr8,inpaint,denoise,colorize] [--variants ...] [--kernels] [--threads 1]``
(writes ``benchmarks/results/brgm.{json,md}`` and one montage per domain and task,
``benchmarks/results/brgm-<domain>-<task>.png``). Rows are appended to ``benchmarks/results/brgm-rows.jsonl`` as
they finish; a rerun skips the cases already there (``--fresh`` starts over), so an interrupted run resumes.

Domains: ``faces`` (genprior-faces64; real: the last 1,000 files of faces-utk64, held out of its training) and
``brains`` (genprior-brain64; real: brain-mri64/test, never trained on). Tasks: super-resolution x4 and x8 (box
kernel), centre in-painting (40 % of the side; PSNR over the hole too), denoising (σ 0.1), colorization (faces; the
held-out colour photos, `common.real_colour_images`); every observation but denoising's and colorization's
carries noise of σ 0.01. Baselines: the pseudo-inverse, bicubic (SR), mean fill (in-painting), grey (colorization),
and the best of scikit-image's denoisers at the known σ (each denoiser's parameter chosen on the test images
themselves, which favours the baseline). Variants of the methods: MAP plain (latent only), MAP + range
extension, MAP + extension + data consistency (the default), and the variational posterior's mean (default).
``--kernels``: a second table, low-resolution inputs made with box, antialiased bicubic, bilinear and Gaussian
kernels, restored with ``kernel="auto"`` and with the true kernel.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import genprior
from genprior.io.images import image_grid, save_image
from genprior.losses import PerceptualDistance
from genprior.methods import BRGM, VariationalBRGM
from genprior.metrics import psnr, ssim
from genprior.physics import SuperResolution

from common import DOMAINS, generated_images, real_colour_images, real_images, start_run, task_physics  # noqa: E402

OUT = Path(__file__).parent / "results"
ROWS = OUT / "brgm-rows.jsonl"
VARIANTS = ("map_plain", "map_extended", "map", "vi")  # the first three come from one MAP run, VI continues it


def skimage_denoisers(y: torch.Tensor, sigma: float, truth: torch.Tensor) -> tuple[str, torch.Tensor]:
    """The best (on PSNR) of scikit-image's TV, bilateral, wavelet and NL-means denoisers, each at its best
    parameter from a small grid; -> (name with parameter, images)."""
    from skimage.restoration import denoise_bilateral, denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

    grey = y.shape[1] == 1
    arr = y.clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float64)
    arr, axis = (arr[..., 0], None) if grey else (arr, -1)  # grey images as 2-D arrays: some denoisers squeeze C
    grids = {
        "tv": [(w, lambda a, w=w: denoise_tv_chambolle(a, weight=w, channel_axis=axis)) for w in (0.05, 0.08, 0.12)],
        "bilateral": [(s, lambda a, s=s: denoise_bilateral(a, sigma_color=s, sigma_spatial=1.5, channel_axis=axis))
                      for s in (0.1, 0.2, 0.3)],
        "wavelet": [(m, lambda a, m=m: denoise_wavelet(a, sigma=sigma, method=m, mode="soft", channel_axis=axis,
                                                       rescale_sigma=True)) for m in ("BayesShrink", "VisuShrink")],
        "nl_means": [(h, lambda a, h=h: denoise_nl_means(a, h=h * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                                         fast_mode=True, channel_axis=axis)) for h in (0.6, 0.8, 1.0)],
    }
    best = (-1e9, "", None)
    for name, grid in grids.items():
        for param, fn in grid:
            out = torch.from_numpy(np.stack([fn(a) for a in arr])).float()
            out = (out[:, None] if grey else out.permute(0, 3, 1, 2)).clamp(0, 1)
            score = float(psnr(out, truth).mean())
            if score > best[0]:
                best = (score, f"{name} ({param})", out)
    return best[1], best[2]


def baselines(task: str, y: torch.Tensor, physics, truth: torch.Tensor) -> dict[str, tuple[str, torch.Tensor]]:
    out = {"pseudo_inverse": ("pseudo-inverse", physics.A_dagger(y).clamp(0, 1))}
    if task in ("sr4", "sr8"):
        f = physics.factor
        out["baseline"] = ("bicubic", F.interpolate(y, scale_factor=f, mode="bicubic", align_corners=False).clamp(0, 1))
    elif task == "inpaint":
        out["baseline"] = ("mean fill", out["pseudo_inverse"][1])
    elif task == "colorize":
        out["baseline"] = ("grey", out["pseudo_inverse"][1])
    else:
        out["baseline"] = skimage_denoisers(y, physics.sigma, truth)
    return out


def scores(x: torch.Tensor, truth: torch.Tensor, perceptual, hole: torch.Tensor | None) -> dict:
    """Per-image PSNR, SSIM, perceptual (VGG16, summed over layers as LPIPS), hole PSNR -> mean and s.e."""
    x = x.clamp(0, 1)
    per = {"psnr": psnr(x, truth).float(), "ssim": ssim(x, truth).float()}
    with torch.no_grad():
        per["perceptual"] = perceptual(x, truth).float()
    if hole is not None:
        m = hole.expand_as(x)
        mse = ((x - truth) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
        per["psnr_hole"] = (-10 * torch.log10(mse)).float()
    n = x.shape[0]
    return {k: {"mean": float(v.mean()), "se": float(v.std() / n ** 0.5) if n > 1 else 0.0} for k, v in per.items()}


def coverage(samples: torch.Tensor, truth: torch.Tensor, level: float = 0.9) -> float:
    lo = torch.quantile(samples, (1 - level) / 2, dim=1)
    hi = torch.quantile(samples, 1 - (1 - level) / 2, dim=1)
    return float(((truth >= lo) & (truth <= hi)).float().mean())


def done_keys(fresh: bool) -> set[tuple]:
    if fresh or not ROWS.exists():
        return set()
    keys = set()
    for line in ROWS.read_text().splitlines():
        r = json.loads(line)
        keys.add((r["table"], r["domain"], r["task"], r["images"], r.get("kernel", ""), r["variant"]))
    return keys


def append(row: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    row = {**row, "command": "python benchmarks/brgm.py " + " ".join(sys.argv[1:])}
    with open(ROWS, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in ("table", "domain", "task", "images", "variant")}),
          {k: round(v["mean"], 3) for k, v in row["scores"].items()}, f"{row['seconds_per_image']:.1f} s/img",
          flush=True)


def montage(rows: list[torch.Tensor], path: Path) -> None:
    """Columns = rows of the list (truth, observation, baseline, methods...), first 6 images, 2x enlarged."""
    k = min(6, rows[0].shape[0])
    cells = [F.interpolate(r[:k].expand(-1, 3, -1, -1) if r.shape[1] == 1 else r[:k], size=(128, 128),
                           mode="nearest") for r in rows]
    save_image(image_grid(torch.stack(cells, 1).flatten(0, 1).clamp(0, 1), cols=len(rows)), path, overwrite=True)


def run_quality(args, shared: Path, perceptual, done: set) -> None:
    for domain in args.domains:
        G = genprior.load_generator(DOMAINS[domain], "cpu")
        sources = {"real": real_images(shared, domain, args.images)}
        if args.generated:
            sources["generated"] = generated_images(G, args.generated)
        for task in args.tasks:
            if task == "colorize" and G.channels != 3:
                continue
            for sname, truth in sources.items():
                if task == "colorize" and sname == "real":
                    truth = real_colour_images(shared, domain, args.images)
                physics = task_physics(task)
                y = physics(truth, seed=0)
                hole = (~physics.observed).float() if task == "inpaint" else None
                base = baselines(task, y, physics, truth)
                pictures = {"truth": truth, "observation": physics.A_dagger(y).clamp(0, 1),
                            "baseline": base["baseline"][1]}
                for key, (label, img) in base.items():
                    if ("quality", domain, task, sname, "", key) not in done:
                        append({"table": "quality", "domain": domain, "task": task, "images": sname, "variant": key,
                                "label": label, "n": truth.shape[0], "scores": scores(img, truth, perceptual, hole),
                                "seconds_per_image": 0.0})
                todo = [v for v in args.variants if ("quality", domain, task, sname, "", v) not in done]
                if todo:
                    for vname, (img, extra, dt) in run_variants(G, y, physics, todo).items():
                        pictures[vname] = img
                        row = {"table": "quality", "domain": domain, "task": task, "images": sname,
                               "variant": vname, "label": vname, "n": truth.shape[0],
                               "scores": scores(img, truth, perceptual, hole), "seconds_per_image": dt / truth.shape[0],
                               "residual_rms": float((physics.A(img) - y).square().mean().sqrt()), **extra}
                        if "samples" in row:
                            row["coverage90"] = coverage(row.pop("samples"), truth)
                        append(row)
                if sname == "real" and (todo or args.montages):
                    note = ""
                    if len(pictures) < 3 + len(args.variants):  # some rows were there already: redraw on 6 images
                        k = min(6, truth.shape[0])
                        pictures = {name: img[:k] for name, img in pictures.items() if name in ("truth", "observation",
                                                                                                "baseline")}
                        pictures.update({v: img for v, (img, _, _) in run_variants(G, y[:k], physics,
                                                                                    args.variants).items()})
                        note = f" (methods re-run on the first {k} images for this picture)"
                    montage(list(pictures.values()), OUT / f"brgm-{domain}-{task}.png")
                    (OUT / f"brgm-{domain}-{task}.txt").write_text("columns: " + " | ".join(pictures) + note + "\n")


def run_kernels(args, shared: Path, perceptual, done: set) -> None:
    G = genprior.load_generator(DOMAINS["faces"], "cpu")
    truth = real_images(shared, "faces", args.images)
    for kernel in ("bicubic_aa", "gaussian", "bilinear_aa", "box"):  # box last: its known-kernel run repeats SR x4's main row
        y = SuperResolution(4, kernel, sigma=0.01)(truth, seed=0)
        for assumed in (kernel, "auto"):
            key = ("kernels", "faces", "sr4", "real", kernel, f"map-{'auto' if assumed == 'auto' else 'known'}")
            if key in done:
                continue
            physics = SuperResolution(4, assumed, sigma=0.01)
            t0 = time.perf_counter()
            res = BRGM(G, perceptual="vgg")(y, physics, seed=0)
            dt = (time.perf_counter() - t0) / truth.shape[0]
            append({"table": "kernels", "domain": "faces", "task": "sr4", "images": "real", "kernel": kernel,
                    "variant": key[-1], "n": truth.shape[0], "scores": scores(res.mean, truth, perceptual, None),
                    "seconds_per_image": dt, "kernel_weights": physics.kernel_weights()})
        if ("kernels", "faces", "sr4", "real", kernel, "bicubic") not in done:
            bic = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
            append({"table": "kernels", "domain": "faces", "task": "sr4", "images": "real", "kernel": kernel,
                    "variant": "bicubic", "n": truth.shape[0], "scores": scores(bic, truth, perceptual, None),
                    "seconds_per_image": 0.0})


def run_variants(G, y: torch.Tensor, physics, variants: list[str]) -> dict[str, tuple[torch.Tensor, dict, float]]:
    """{variant: (images, extra row fields, seconds)}: one default MAP run gives its latent-only image (plain), the
    range-extended generator image (extended) and the final image (map); VI continues from that MAP fit."""
    from genprior.methods.extension import NoExtension

    out = {}
    t0 = time.perf_counter()
    fit = BRGM(G, perceptual="vgg")(y, physics, seed=0)
    t_map = time.perf_counter() - t0
    with torch.no_grad():
        noise = {k: v for k, v in fit.noise.items()} or None
        plain = NoExtension().render(G, fit.latent, noise).clamp(0, 1)
    settings = {k: v for k, v in fit.config.items() if k not in ("generator", "physics")}
    stages = fit.history["loss"]
    share = {k: len(v) / sum(len(u) for u in stages.values()) for k, v in stages.items()}
    if "map_plain" in variants:
        out["map_plain"] = (plain, {"settings": {"stage": "map only"}}, t_map * share.get("map", 1.0))
    if "map_extended" in variants:
        out["map_extended"] = (fit.images["generated"], {"settings": {"stage": "map + extension"}}, t_map)
    if "map" in variants:
        out["map"] = (fit.mean, {"settings": settings}, t_map)
    if "vi" in variants:
        t0 = time.perf_counter()
        vi = VariationalBRGM(G, perceptual="vgg")(y, physics, seed=0, start=fit)
        dt = time.perf_counter() - t0 + t_map
        out["vi"] = (vi.mean, {"samples": vi.samples, "settings": {k: v for k, v in vi.config.items()
                                                                   if k not in ("generator", "physics")}}, dt)
    return out


def fmt(s: dict, key: str = "psnr", digits: int = 2) -> str:
    v = s.get(key)
    return "–" if v is None else f"{v['mean']:.{digits}f} ± {v['se']:.{digits}f}"


def write_report(args) -> None:
    rows = [json.loads(line) for line in ROWS.read_text().splitlines()] if ROWS.exists() else []
    command = "; ".join(f"`{c}`" for c in dict.fromkeys(r.get("command", "") for r in rows) if c) or "(none)"
    report = {"command": command, "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                              "threads": args.threads}, "rows": rows}
    (OUT / "brgm.json").write_text(json.dumps(report, indent=1))
    lines = ["# BRGM benchmark", "",
             f"Rows from: {command} (torch {torch.__version__}, {args.threads} thread(s); the 2-core machine is shared, "
             "so seconds are indicative). Mean ± standard error over the images. PSNR in dB; perceptual: VGG16 "
             "distance summed over layers as LPIPS (lower is better); coverage: share of true pixels inside the "
             "posterior's 90 % interval. Observations carry noise σ 0.01 (denoising: σ 0.1).", ""]
    quality = [r for r in rows if r["table"] == "quality"]
    for domain in dict.fromkeys(r["domain"] for r in quality):
        for images in ("real", "generated"):
            sel = [r for r in quality if r["domain"] == domain and r["images"] == images]
            if not sel:
                continue
            lines += [f"## {domain}: {images} images ({DOMAINS[domain]}, {sel[0]['n']} images)", "",
                      "| task | method | PSNR | SSIM | perceptual | hole PSNR | cov90 | s / image |",
                      "|---|---|---|---|---|---|---|---|"]
            for r in sel:
                lines.append(f"| {r['task']} | {r.get('label', r['variant'])} | {fmt(r['scores'])} | "
                             f"{fmt(r['scores'], 'ssim', 3)} | {fmt(r['scores'], 'perceptual', 3)} | "
                             f"{fmt(r['scores'], 'psnr_hole')} | {r.get('coverage90', float('nan')):.2f} | "
                             f"{r['seconds_per_image']:.1f} |")
            lines.append("")
    kern = [r for r in rows if r["table"] == "kernels"]
    if kern:
        lines += ["## Unknown kernels: real faces, SR x4, LR made by each kernel (MAP default)", "",
                  "| LR kernel | restored with | PSNR | SSIM | perceptual | fitted kernel weights |", "|---|---|---|---|---|---|"]
        for r in kern:
            w = r.get("kernel_weights")
            wt = ", ".join(f"{k} {v:.2f}" for k, v in w.items()) if w else ""
            lines.append(f"| {r['kernel']} | {r['variant']} | {fmt(r['scores'])} | {fmt(r['scores'], 'ssim', 3)} | "
                         f"{fmt(r['scores'], 'perceptual', 3)} | {wt} |")
        lines.append("")
    pictures = sorted(p.name for p in OUT.glob("brgm-*-*.png"))
    if pictures:
        lines += ["Montages (columns: truth | observation (pseudo-inverse) | baseline | methods in variant order): "
                  + ", ".join(f"`{p}`" for p in pictures), ""]
    (OUT / "brgm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24, help="real held-out images per domain")
    ap.add_argument("--generated", type=int, default=8, help="generator-made images per domain (0: none)")
    ap.add_argument("--domains", default="faces,brains")
    ap.add_argument("--tasks", default="sr4,sr8,inpaint,denoise")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--kernels", action="store_true", help="also the unknown-kernel table (faces, SR x4)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="drop the rows of earlier runs")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--montages", action="store_true", help="redraw the montages of rows already there (6 images)")
    args = ap.parse_args()
    args.domains, args.tasks, args.variants = (a.split(",") for a in (args.domains, args.tasks, args.variants))
    if args.report_only:
        write_report(args)
        return
    shared = start_run(ROWS, args.threads, args.fresh)
    perceptual = PerceptualDistance(size=64)
    done = done_keys(args.fresh)
    run_quality(args, shared, perceptual, done)
    if args.kernels:
        run_kernels(args, shared, perceptual, done)
    write_report(args)


if __name__ == "__main__":
    main()
