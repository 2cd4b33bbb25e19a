"""BRGM benchmark: quality of MAP and VI against the pseudo-inverse, VI calibration, and speed.

Run: ``python benchmarks/brgm.py [--images 4] [--map-steps 200] [--vi-steps 100] [--generators a,b]``
(writes benchmarks/results/brgm.{json,md}). With ``--generators`` naming a subset, the rows of the other
generators are kept from the previous report (each row records the command that made it).

Cases: super-resolution x4 and x8 (box) and centre in-painting, on images the generator made (truth known,
the true latent exists) and on held-out real images, for the DCGAN face prior (real: faces-utk64, last 1,000
files), genprior's shipped StyleGAN2 face model (real: the same held-out faces, never seen in training) and
brain model (real: brain-mri64/test, never seen in training);
StyleGAN2 also runs MAP with its noise maps optimised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import genprior
from genprior.io.images import read_image
from genprior.losses import PerceptualDistance
from genprior.methods import BRGM, VariationalBRGM
from genprior.metrics import interval_coverage, psnr, ssim
from genprior.paths import shared_dir
from genprior.physics import Inpainting, SuperResolution, center_mask

OUT = Path(__file__).parent / "results"


def real_faces(shared: Path, n: int) -> torch.Tensor:
    files = sorted(os.listdir(shared / "data" / "faces-utk64"))[-1000:][:: max(1, 1000 // n)][:n]
    return torch.cat([read_image(shared / "data" / "faces-utk64" / f, channels=3) for f in files])


def real_brains(shared: Path, n: int) -> torch.Tensor:
    folder = shared / "data" / "brain-mri64" / "test"
    files = sorted(os.listdir(folder))
    return torch.cat([read_image(folder / f, channels=1) for f in files[:: max(1, len(files) // n)][:n]])


def generated(G, n: int, seed: int = 1000) -> torch.Tensor:
    """Images the generator made from seeded z, with random noise maps (so noise is unknown to the methods)."""
    with torch.no_grad():
        return G.render(G.latent_from_z(G.make_z(range(seed, seed + n))), noise_mode="random")


def overhead(G, method: BRGM, y, physics, batch: int, repeats: int = 3) -> dict:
    """Seconds per optimisation step vs a bare G forward+backward at the same batch."""
    latent = method.initial_latent(y, physics, None) if method.cfg.space != "z" else torch.randn(batch, G.z_dim)
    latent = latent.clone().requires_grad_(True)
    feats = method.perceptual.features(y)

    def bare():
        G.render(latent, clamp=False).square().mean().backward()

    def step():
        e, _ = method.energy(latent, y, physics, feats)
        e.sum().backward()

    out = {}
    for name, fn in (("bare_forward_backward_s", bare), ("brgm_step_s", step)):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[name] = sorted(times)[len(times) // 2]
    out["overhead_ratio"] = out["brgm_step_s"] / out["bare_forward_backward_s"]
    return out


def evaluate(truth, restored, perceptual) -> dict:
    return {"psnr": float(psnr(restored, truth).mean()), "ssim": float(ssim(restored, truth).mean()),
            "perceptual": float(perceptual(restored, truth).mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--map-steps", type=int, default=200)
    ap.add_argument("--vi-steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vi-anneal", type=float, default=10.0, help="VariationalBRGM anneal (1: none; rows of runs "
                    "before this option used none)")
    ap.add_argument("--generators", default="dcgan-digiface64,genprior-brain64",
                    help="Comma-separated subset to run; rows of the others are kept from the previous report.")
    ap.add_argument("--tasks", default="superres-x4,superres-x8,inpaint-center",
                    help="Comma-separated subset of tasks; rows of the others are kept from the previous report.")
    ap.add_argument("--report-from", type=Path, default=None,
                    help="Rebuild the report from the JSON rows an interrupted run printed (its log).")
    args = ap.parse_args()
    if args.report_from is not None:
        rows = [json.loads(line) for line in args.report_from.read_text().splitlines() if line.startswith("{")]
        write_report(rows, {}, args, f"(rebuilt from the rows of an interrupted run: {len(rows)} cases)")
        return
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(args.threads)
    perceptual = PerceptualDistance(size=64)
    real = {"dcgan-digiface64": ("real-faces", real_faces), "genprior-faces64": ("real-faces", real_faces),
            "genprior-brain64": ("real-brains", real_brains)}
    chosen = args.generators.split(",")
    unknown = sorted(set(chosen) - set(real))
    if unknown:
        sys.exit(f"unknown generators {unknown}; known: {sorted(real)}")
    command = "python benchmarks/brgm.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "report_from")
    tasks = {"superres-x4": SuperResolution(4, "box", sigma=0.01), "superres-x8": SuperResolution(8, "box", sigma=0.01),
             "inpaint-center": Inpainting(center_mask(64, 0.4), sigma=0.01)}
    unknown = sorted(set(args.tasks.split(",")) - set(tasks))
    if unknown:
        sys.exit(f"unknown tasks {unknown}; known: {sorted(tasks)}")
    tasks = {name: physics for name, physics in tasks.items() if name in args.tasks.split(",")}
    previous = json.loads((OUT / "brgm.json").read_text()) if (OUT / "brgm.json").exists() else {"rows": [], "speed": {}}
    rows = [{"command": previous.get("command", "?"), **r} for r in previous["rows"]
            if (r["generator"] not in chosen or r["task"] not in tasks) and r["generator"] in real]
    speed = {g: {"batch": int(previous.get("args", {}).get("images", 0)), **s}
             for g, s in previous.get("speed", {}).items() if g not in chosen and g in real}
    for gname in chosen:
        G = genprior.load_generator(gname, "cpu")
        space = "w+" if G.w_dim is not None else "z"
        sname, load_real = real[gname]
        sources = {"generated": generated(G, args.images), sname: load_real(shared, args.images)}
        for tname, physics in tasks.items():
            for sname, truth in sources.items():
                y = physics(truth, seed=0)
                t0 = time.perf_counter()
                map_res = BRGM(G, space=space, steps=args.map_steps, perceptual="vgg")(y, physics, seed=0)
                t_map = time.perf_counter() - t0
                map_noise = None
                if space == "w+":
                    map_noise = BRGM(G, space=space, steps=args.map_steps, perceptual="vgg",
                                     optimize_noise=True)(y, physics, seed=0)
                t0 = time.perf_counter()
                vi = VariationalBRGM(G, space=space, steps=args.vi_steps, map_steps=args.map_steps // 2,
                                     num_samples=16, perceptual="vgg", anneal=args.vi_anneal)(y, physics, seed=0)
                t_vi = time.perf_counter() - t0
                row = {"generator": gname, "task": tname, "images": sname, "n": int(truth.shape[0]),
                       "command": command,
                       "pseudo_inverse": evaluate(truth, physics.A_dagger(y).clamp(0, 1), perceptual),
                       "map": evaluate(truth, map_res.mean, perceptual),
                       "map_noise": None if map_noise is None else evaluate(truth, map_noise.mean, perceptual),
                       "vi_mean": evaluate(truth, vi.mean, perceptual),
                       "vi_coverage90": float(interval_coverage(vi.samples, truth, 0.9).mean()),
                       "vi_mean_std": float(vi.std.mean()), "map_seconds": t_map, "vi_seconds": t_vi}
                rows.append(row)
                print(json.dumps(row), flush=True)
        physics = SuperResolution(4, "box", sigma=0.01)
        y = physics(sources["generated"], seed=0)
        speed[gname] = {"batch": args.images, **overhead(G, BRGM(G, space=space, perceptual="vgg"), y, physics,
                                                         args.images)}
        print(gname, speed[gname], flush=True)
    write_report(rows, speed, args)


def write_report(rows: list[dict], speed: dict, args: argparse.Namespace, note: str = "") -> None:
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "report_from")
    report = {"command": f"python benchmarks/brgm.py {options}",
              "note": note, "args": {k: str(v) for k, v in vars(args).items()},
              "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads},
              "rows": rows, "speed": speed}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "brgm.json").write_text(json.dumps(report, indent=2))
    lines = ["# BRGM benchmark", "", f"Command: `{report['command']}` (torch {torch.__version__}, "
             f"{args.threads} thread(s)) {note}. Noise sigma 0.01 on every observation. PSNR dB / SSIM / perceptual "
             "(VGG16, lower is better). Coverage: share of true pixels inside the VI 90 % per-pixel interval.", "",
             "| generator | task | images | pseudo-inverse | MAP | MAP + noise maps | VI mean | VI coverage90 | MAP s "
             "| VI s |", "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda m: "–" if m is None else f"{m['psnr']:.2f} / {m['ssim']:.3f} / {m['perceptual']:.3f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['generator']} | {r['task']} | {r['images']} | {fmt(r['pseudo_inverse'])} | {fmt(r['map'])} "
                     f"| {fmt(r.get('map_noise'))} | {fmt(r['vi_mean'])} | {r['vi_coverage90']:.2f} "
                     f"| {r['map_seconds']:.0f} | {r['vi_seconds']:.0f} |")
    commands = sorted({r.get("command", report["command"]) for r in rows})
    if len(commands) > 1:
        lines += ["", "Rows come from these runs: " + "; ".join(f"`{c}`" for c in commands) + "."]
    lines += ["", "## Speed: one BRGM step vs a bare generator forward+backward (same batch, super-resolution x4)", "",
              "| generator | batch | bare G fwd+bwd (s) | BRGM step (s) | overhead ratio |", "|---|---|---|---|---|"]
    for g, s in speed.items():
        lines.append(f"| {g} | {s.get('batch', '?')} | {s['bare_forward_backward_s']:.4f} | {s['brgm_step_s']:.4f} "
                     f"| {s['overhead_ratio']:.2f} |")
    (OUT / "brgm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
