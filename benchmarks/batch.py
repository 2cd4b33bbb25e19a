"""Batch engine benchmark: inputs per minute against workers for the local and Ray engines, and start-up cost.

Run: ``python benchmarks/batch.py [--images 12] [--steps 20] [--workers 1,2] [--engines local,ray]``
(writes benchmarks/results/batch.{json,md}).

Job (a real, cheap restoration): `genprior.restore.RestoreJob`, what ``genprior restore DIR --workers N`` runs:
BRGM MAP super-resolution x4 (box) of 32x32 grey images with the shipped ``genprior-digits32`` generator,
``--steps`` Adam steps, no range extension; ``setup()`` loads the generator once per worker (the perceptual
network's weights are read once per process); each input's folder gets the full `Reconstruction` files and its
PSNR. The inputs
are samples of the generator itself (seeds 0..N-1), written as PNGs, so the truth is known.

Model of the cost: ``T(n, w) = start-up(w) + n x t_input / (w x efficiency(w))``; the report gives
start-up (engine start, worker spawn, ``setup()``), t_input (seconds per input in a worker) and the
efficiency of w workers against one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results"


def restore_job(steps: int):
    """genprior's own batch job (what ``genprior restore DIR --workers N`` runs): BRGM MAP super-resolution x4 of
    each clean image file, degraded here (``simulate``) so the PSNR is known; no range extension (cheap)."""
    from genprior.restore import RestoreJob, RestoreOptions

    return RestoreJob("genprior-digits32", RestoreOptions(task="superres", factor=4, simulate=True, steps=steps,
                                                          extension="none", perceptual="vgg"), device="cpu")


def make_inputs(folder: Path, n: int) -> list[Path]:
    from genprior.io.checkpoints import load_generator
    from genprior.io.images import save_image

    G = load_generator("genprior-digits32", device="cpu")
    with torch.no_grad():
        images = G.render(G.latent_from_z(G.make_z(range(n))))
    folder.mkdir(parents=True)
    return [save_image(images[i], folder / f"digit{i:03d}.png") for i in range(n)]


def measure(engine: str, workers: int, files: list[Path], work: Path, steps: int) -> dict:
    from genprior.batch import run_batch

    out = work / f"{engine}-{workers}"
    report = run_batch(restore_job(steps), files, out, engine=engine, workers=workers, threads=1,
                       show_progress=False)
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    per_input = sum(float(r["seconds"]) for r in rows) / len(rows)
    steady = report.seconds - report.startup_seconds
    return {"engine": engine, "workers": workers, "images": report.restored, "failed": report.failed,
            "seconds": report.seconds, "startup_s": report.startup_seconds, "seconds_per_input": round(per_input, 3),
            "images_per_min": round(60 * report.restored / report.seconds, 2),
            "images_per_min_after_startup": round(60 * report.restored / steady, 2),
            "mean_psnr": round(sum(float(r["restored_psnr"]) for r in rows) / len(rows), 3)}


def _spin(seconds: float) -> int:
    """A fixed CPU-bound torch loop (1 thread); returns the matrix products done in ``seconds``."""
    torch.set_num_threads(1)
    a, done, end = torch.randn(192, 192), 0, time.monotonic() + seconds
    while time.monotonic() < end:
        a = torch.tanh(a @ a)
        done += 1
    return done


def machine_parallelism(seconds: float = 4.0) -> float:
    """How much faster 2 processes get through the loop than 1, now: the ceiling for 2 workers here."""
    import multiprocessing as mp

    one = _spin(seconds)
    with mp.get_context("spawn").Pool(2) as pool:
        two = sum(pool.map(_spin, [seconds, seconds]))
    return round(two / one, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--engines", default="local,ray")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ceiling = machine_parallelism()
    print(json.dumps({"two_process_speed_up_of_a_plain_loop": ceiling}), flush=True)
    work = Path(tempfile.mkdtemp(prefix="genprior-bench-batch-"))
    try:
        files = make_inputs(work / "in", args.images)
        rows = []
        for engine in args.engines.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                rows.append(measure(engine, workers, files, work, args.steps))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        one = next(r for r in rows if r["engine"] == row["engine"] and r["workers"] == 1)
        row["speed_up_after_startup"] = round(row["images_per_min_after_startup"] / one["images_per_min_after_startup"], 2)
        row["efficiency"] = round(row["speed_up_after_startup"] / row["workers"], 2)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report = {"command": f"python benchmarks/batch.py --images {args.images} --steps {args.steps} "
                         f"--workers {args.workers} --engines {args.engines}",
              "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                          "load_average_1min_before": load_before, "load_average_1min_after": load,
                          "two_process_speed_up_of_a_plain_loop": ceiling},
              "model": "T(n, w) = startup(w) + n * seconds_per_input / (w * efficiency(w))", "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Batch engine benchmark", "",
             f"Command: `{report['command']}` (torch {torch.__version__}, {os.cpu_count()} CPU cores, 1 torch "
             f"thread per worker; 1-minute load average {load_before:.2f} before and {load:.2f} after the run).", "",
             f"The machine's ceiling at the time: 2 processes ran a plain 1-thread torch loop {ceiling:.2f}x as fast "
             "as 1 (2.0 on two idle cores); other jobs share these cores, so 2 workers cannot beat that.", "",
             "Job: `genprior.restore.RestoreJob` (what `genprior restore DIR --workers N` runs), BRGM MAP super-resolution x4 of 32x32 `genprior-digits32` samples, no range extension, "
             f"{args.steps} steps per image; `setup()` loads the generator once per worker, the perceptual weights are read once per process.",
             "", "| engine | workers | images | wall s | start-up s | s per image (in a worker) | images/min | "
             "images/min after start-up | speed-up | efficiency | mean PSNR dB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['workers']} | {r['images']} | {r['seconds']:.1f} | {r['startup_s']:.1f} | "
                     f"{r['seconds_per_input']:.2f} | {r['images_per_min']:.1f} | "
                     f"{r['images_per_min_after_startup']:.1f} | {r['speed_up_after_startup']:.2f}x | "
                     f"{r['efficiency']:.2f} | {r['mean_psnr']:.2f} |")
    lines += ["", f"Scaling: {report['model']}, with start-up and seconds per image from the table; "
              "efficiency(1) = 1 by definition."]
    (OUT / "batch.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
