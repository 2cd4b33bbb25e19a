"""Training benchmark: speed per model size, FD-VGG over training, and each run against its floor and ceiling.

Run: ``python benchmarks/training.py [--runs /work/runs] [--n 500] [--every 4] [--speed]``
(writes benchmarks/results/training.{json,md}); ``--recipes NAME=RUN_DIR ...`` (with ``--recipes-only`` keeping
the rest of an earlier report) adds the recipes side by side on faces64: per snapshot, FD-VGG, precision and
recall (VGG16 relu5_3), FD on relu2_2, and FD-rand on a seeded random convnet that no discriminator sees
(`genprior.metrics.generative.random_features`), against process CPU hours. Scores are cached per run in
``RUN_DIR/eval-n<n>.jsonl``.

* floor: FD-VGG between real training images and the held-out images (what a perfect generator would get);
* ceiling: FD-VGG of the untrained network (same config, its initial weights) against the held-out images;
* each run's snapshots (``network-<step>.safetensors``) are scored against the same held-out images.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from genprior.generators import build_generator
from genprior.io.checkpoints import read_checkpoint
from genprior.paths import shared_dir
from genprior.training.data import load_dataset, split_holdout
from genprior.training.loop import train
from genprior.io.checkpoints import load_generator
from genprior.training.inception import inception_features
from genprior.metrics.generative import (_model, _to_vgg_input, cached_fid_inception, fvd_vgg, frechet_distance,
                                       generate_images, precision_recall, random_features, score_snapshots,
                                       vgg_features)

OUT = Path(__file__).parent / "results"

# name -> (data path under the shared folder, resolution, channels, held-out count)
RUNS = {
    "faces64": ("data/faces-utk64", 64, 3, 1000),
    "brain64": ("data/brain-mri64/test", 64, 1, 0),  # trained on train/; the test split is the held-out set
    "digits32": ("data/digits/t10k-images-idx3-ubyte.gz", 32, 1, 1000),
}
TRAIN_DATA = {"brain64": "data/brain-mri64/train"}

SIZES = {  # model sizes timed with --speed (64x64 RGB, batch 16)
    "2048/64": dict(g_channel_base=2048, g_channel_max=64, d_channel_base=2048, d_channel_max=64),
    "2048/128": dict(g_channel_base=2048, g_channel_max=128, d_channel_base=2048, d_channel_max=128),
    "4096/128": dict(g_channel_base=4096, g_channel_max=128, d_channel_base=4096, d_channel_max=128),
}


def held_out(shared: Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(training images, held-out images) of a run's data set, uint8 (N, C, R, R)."""
    path, res, ch, holdout = RUNS[name]
    if name in TRAIN_DATA:
        return (load_dataset(shared / TRAIN_DATA[name], resolution=res, channels=ch, log=None),
                load_dataset(shared / path, resolution=res, channels=ch, log=None))
    return split_holdout(load_dataset(shared / path, resolution=res, channels=ch, log=None), holdout)


def speed(shared: Path) -> list[dict]:
    """sec/kimg of a few training steps per model size (one thread)."""
    data = load_dataset(shared / "data/faces-utk64", resolution=64, channels=3, max_images=256, log=None)
    rows = []
    for name, kw in SIZES.items():
        with tempfile.TemporaryDirectory() as tmp:
            warm = train(data, tmp, resolution=64, channels=3, kimg=0.032, batch=16, snapshot_kimg=10, progress=False,
                         num_threads=1, log=lambda s: None, **kw)
            done = train(data, tmp, resolution=64, channels=3, kimg=0.128, batch=16, snapshot_kimg=10, progress=False,
                         num_threads=1, log=lambda s: None, **kw)
            sec = (done["train_sec"] - warm["train_sec"]) / (done["kimg"] - warm["kimg"])
            G = build_generator(read_checkpoint(Path(tmp) / "network-latest.safetensors")[0])
            params = sum(p.numel() for p in G.parameters())
        rows.append({"size": name, "sec_per_kimg": sec, "kimg_per_hour": 3600 / sec, "G_params": params})
        print(rows[-1], flush=True)
    return rows


@torch.no_grad()
def three_spaces(images: torch.Tensor) -> dict:
    """Features of uint8 images in the three spaces: VGG16 relu5_3 and relu2_2 (pooled), and the random convnet."""
    vgg = _model("relu5_3", torch.device("cpu")).vgg
    top, low = [], []
    for i in range(0, len(images), 50):
        taps = vgg(_to_vgg_input(images[i:i + 50]))
        top.append(taps[4].mean(dim=[2, 3]).double())
        low.append(taps[1].mean(dim=[2, 3]).double())
    return {"relu5_3": torch.cat(top).numpy(), "relu2_2": torch.cat(low).numpy(), "rand": random_features(images)}


def score_recipe_run(run: Path, held: torch.Tensor, n: int, every: int) -> list[dict]:
    """Per snapshot (every ``every``-th, and the last): FD-VGG, precision, recall, FD relu2_2, FD-rand; cached."""
    from safetensors import safe_open

    single = run.is_file()  # one exported network (a shipped model) instead of a run folder
    cache = run.parent / f"{run.stem}.eval-n{n}.jsonl" if single else run / f"eval-n{n}.jsonl"
    done = {}
    if cache.exists():
        done = {r["file"]: r for r in map(json.loads, cache.read_text().splitlines()) if r}
    files = [run] if single else sorted(p for p in run.glob("network-*.safetensors") if p.stem != "network-latest")
    chosen = files[::-1][::every][::-1]
    real = three_spaces(held[:n])
    out = []
    for path in chosen:
        if path.name not in done:
            with safe_open(str(path), "pt") as f:
                info = json.loads((f.metadata() or {}).get("training", "{}"))
            fake = three_spaces(generate_images(load_generator(path, device="cpu"), n))
            p, r = precision_recall(real["relu5_3"], fake["relu5_3"])
            done[path.name] = dict(file=path.name, kimg=info.get("kimg"), cpu_h=info.get("process_cpu_hours"),
                                   wall_h=info.get("train_hours", info.get("cpu_hours")), fd_vgg=frechet_distance(fake["relu5_3"], real["relu5_3"]),
                                   precision=p, recall=r, fd_relu2_2=frechet_distance(fake["relu2_2"], real["relu2_2"]),
                                   fd_rand=frechet_distance(fake["rand"], real["rand"]))
            with open(cache, "a") as f:
                f.write(json.dumps(done[path.name]) + "\n")
            print(run.name, json.dumps(done[path.name]), flush=True)
        out.append(done[path.name])
    return out


def recipe_lines(recipes: dict) -> list[str]:
    lines = ["", "## Recipes side by side (faces64, same data and seed, batch 16, 2048/128 networks, one thread)", "",
             "FD-VGG / precision / recall on VGG16 relu5_3, FD-relu2_2 on VGG16 relu2_2, FD-rand on a seeded random "
             "convnet that no discriminator sees (lower is better; each is comparable only with itself). CPU hours "
             "are the process's CPU time in the training steps (`process_cpu_hours`); wall hours of the steps were "
             "longer on this shared 2-core machine. A VGG16-feature discriminator (projected, vision-aided) trains "
             "on features the three VGG16 metrics also use: judge it by FD-rand and the sample grids too.", ""]
    for name, r in recipes.items():
        lines += [f"### {name}: {r['description']}", "",
                  "| kimg | CPU h (process) | wall h | FD-VGG | precision | recall | FD-relu2_2 | FD-rand |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {c['kimg']:.1f} | {c['cpu_h'] or float('nan'):.2f} | {c['wall_h'] or float('nan'):.2f} "
                  f"| {c['fd_vgg']:.0f} | {c['precision']:.3f} | {c['recall']:.3f} | {c['fd_relu2_2']:.0f} "
                  f"| {c['fd_rand']:.2f} |" for c in r["curve"]]
        lines.append("")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=Path("/work/runs"))
    ap.add_argument("--n", type=int, default=500, help="images per FD-VGG estimate")
    ap.add_argument("--every", type=int, default=4, help="score every k-th snapshot")
    ap.add_argument("--speed", action="store_true", help="also time training steps per model size")
    ap.add_argument("--recipes", nargs="*", default=[], metavar="NAME=RUN_DIR",
                    help="faces64 runs of other recipes to score side by side (NAME=RUN_DIR)")
    ap.add_argument("--recipes-only", action="store_true", help="score only --recipes; keep the rest of the report")
    args = ap.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(1)
    command = "python benchmarks/training.py " + " ".join(sys.argv[1:])
    if args.recipes_only:
        report = json.loads((OUT / "training.json").read_text())
    else:
        report = {"command": command, "n": args.n, "runs": {},
                  "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1}}
    inception = cached_fid_inception() if not args.recipes_only else None  # FID proper where its weights are cached
    if not args.recipes_only:
        report["fid"] = "measured" if inception is not None else "not measured: Inception weights not cached"
    for name in RUNS if not args.recipes_only else ():
        run = args.runs / name
        if not (run / "checkpoint.json").exists():
            print(f"{name}: no run at {run}", flush=True)
            continue
        train_imgs, held = held_out(shared, name)
        held, train_imgs = held[: args.n], train_imgs[torch.randperm(len(train_imgs), generator=torch.Generator().manual_seed(0))[: args.n]]
        held_feats, train_feats = vgg_features(held), vgg_features(train_imgs)
        floor = frechet_distance(train_feats, held_feats)
        floor_pr = precision_recall(held_feats, train_feats)
        cfg = json.loads((run / "checkpoint.json").read_text())["config"]
        torch.manual_seed(cfg["seed"])  # the untrained network: same architecture, fresh initial weights
        G0 = build_generator(read_checkpoint(run / "network-latest.safetensors")[0]).eval()
        ceiling = fvd_vgg(G0, held_feats, args.n)
        curve = score_snapshots(run, held, args.n, every=args.every)
        stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if line.strip()]
        report["runs"][name] = {"floor_real_vs_heldout": floor, "floor_precision_recall": floor_pr,
                                "ceiling_untrained": ceiling, "curve": curve,
                                "median_kimg_per_hour": statistics.median(s["kimg_per_hour"] for s in stats),
                                "kimg": stats[-1]["kimg"], "cpu_hours": stats[-1]["train_hours"]}
        if inception is not None:
            G = load_generator(run / curve[-1]["file"], device="cpu")
            held_inc = inception_features(inception, held)
            report["runs"][name]["fid_now"] = frechet_distance(
                inception_features(inception, generate_images(G, args.n)), held_inc)
            report["runs"][name]["fid_floor"] = frechet_distance(inception_features(inception, train_imgs), held_inc)
        print(name, json.dumps(report["runs"][name])[:400], flush=True)
    if args.speed and not args.recipes_only:
        report["speed"] = speed(shared)
    if args.recipes:
        held = held_out(shared, "faces64")[1]
        report["recipes_command"], report["recipes"] = command, {}
        for item in args.recipes:
            name, _, run = item.partition("=")
            if Path(run).is_file():
                from safetensors import safe_open

                with safe_open(run, "pt") as f:
                    cfg = {"recipe": "stylegan2", "augment": "color,translation,cutout", "lr": 0.0025,
                           **json.loads((f.metadata() or {}).get("training", "{}"))}
            else:
                cfg = json.loads((Path(run) / "checkpoint.json").read_text())["config"]
            desc = (f"recipe {cfg['recipe']}, augment {cfg['augment'] or 'none'}{' (ADA)' if cfg.get('adaptive') else ''}"
                    f", lr {cfg['lr']}" + (f", G started from {Path(cfg['init_generator']).name}"
                                            if cfg.get("init_generator") else ", from scratch"))
            report["recipes"][name] = {"run": run, "description": desc,
                                       "curve": score_recipe_run(Path(run), held, args.n, args.every)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "training.json").write_text(json.dumps(report, indent=2))
    lines = ["# Training benchmark", "", f"Command: `{report['command']}`; FD-VGG (Fréchet distance of VGG16 relu5_3 "
             "features, lower is better) and k-NN precision / recall (k = 3, same features, higher is better) on "
             f"{report['n']} "
             "images per set, against held-out real images. The floor compares real training images with the held-out "
             "ones (what a perfect generator would get); the untrained network gives the ceiling.", "",
             "| run | kimg | CPU hours | kimg/h (median) | FD-VGG floor (real) | FD-VGG now | FD-VGG untrained "
             "| precision / recall now | precision / recall floor |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["runs"].items():
        now = r["curve"][-1] if r["curve"] else dict(fd_vgg=float("nan"), precision=float("nan"), recall=float("nan"))
        fp, fr = r["floor_precision_recall"]
        lines.append(f"| {name} | {r['kimg']:.1f} | {r['cpu_hours']:.2f} | {r['median_kimg_per_hour']:.1f} "
                     f"| {r['floor_real_vs_heldout']:.0f} | {now['fd_vgg']:.0f} | {r['ceiling_untrained']:.0f} "
                     f"| {now['precision']:.3f} / {now['recall']:.3f} | {fp:.3f} / {fr:.3f} |")
    lines += ["", "FID (Inception-v3, zoo `inception-fid`): " + ("; ".join(
        f"{name} {r['fid_now']:.1f} (floor {r['fid_floor']:.1f})" for name, r in report["runs"].items())
        if inception is not None else report["fid"]) + "."]
    for name, r in report["runs"].items():
        lines += ["", f"## {name}: over training", "", "| step | kimg | CPU hours | FD-VGG | precision | recall |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c['step']} | {c['kimg']:.1f} | {c['cpu_hours']:.2f} | {c['fd_vgg']:.0f} | {c['precision']:.3f} "
                  f"| {c['recall']:.3f} |" for c in r["curve"]]
    if "speed" in report:
        lines += ["", "## Speed per model size (64x64 RGB, batch 16, one thread)", "",
                  "| size (channel base/max) | G params | sec/kimg | kimg/h |", "|---|---|---|---|"]
        lines += [f"| {s['size']} | {s['G_params']} | {s['sec_per_kimg']:.0f} | {s['kimg_per_hour']:.1f} |"
                  for s in report["speed"]]
    if report.get("recipes"):
        lines += recipe_lines(report["recipes"]) + [f"Command: `{report['recipes_command']}`."]
    (OUT / "training.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
