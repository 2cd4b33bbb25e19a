"""An archive at full scale: N images with some corrupt files, the run killed part-way, then resumed.

Run: ``python benchmarks/batch_archive.py [--images 500] [--corrupt 5] [--steps 5] [--workers 2] [--kill-after 60]``
(writes benchmarks/results/batch_archive.{json,md}).

The job is `batch.restore_job`, genprior's own batch job (BRGM MAP super-resolution x4 of `genprior-digits32` samples, ``--steps`` steps, so
the scale is affordable here). The first run is killed with SIGKILL on its whole process group (parent and
workers, as when a machine dies) after ``--kill-after`` seconds; the second run, the same command, must finish
the archive: every good image restored, every corrupt file listed in ``failures.jsonl``, and no image that was
complete before the kill restored again (its folder's files keep their modification times).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from batch import OUT, make_inputs, restore_job  # noqa: E402  (benchmarks/batch.py)


def run(inputs: list[Path], out: Path, steps: int, workers: int):
    from genprior.batch import run_batch

    return run_batch(restore_job(steps), inputs, out, engine="local", workers=workers, threads=1,
                     show_progress=False, summary_every=50)


def finished(out: Path) -> dict[str, float]:
    """{image folder: mtime of its batch.json} for the folders complete now."""
    return {p.parent.name: p.stat().st_mtime for p in out.glob("*/batch.json")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--corrupt", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kill-after", type=float, default=60.0)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # internal: INPUT_LIST OUT
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.child:
        run([Path(p) for p in Path(args.child[0]).read_text().split("\n")], Path(args.child[1]), args.steps,
            args.workers)
        return
    work = Path(tempfile.mkdtemp(prefix="genprior-bench-archive-"))
    try:
        good = make_inputs(work / "in", args.images - args.corrupt)
        bad = []
        for i in range(args.corrupt):  # a truncated PNG, random bytes, an empty file, ...
            p = work / "in" / f"corrupt{i}.png"
            p.write_bytes(good[0].read_bytes()[: 40 + 7 * i] if i % 2 == 0 else os.urandom(100 * i))
            bad.append(p)
        inputs = sorted(good + bad)
        listing = work / "inputs.txt"
        listing.write_text("\n".join(map(str, inputs)))
        out = work / "out"
        t0 = time.monotonic()
        child = subprocess.Popen([sys.executable, __file__, "--steps", str(args.steps), "--workers",
                                  str(args.workers), "--child", str(listing), str(out)], start_new_session=True)
        try:
            child.wait(timeout=args.kill_after)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            killed = True
        first_s = time.monotonic() - t0
        before = finished(out)
        time.sleep(1.0)  # so a rewrite of a finished folder would show in its mtime
        t0 = time.monotonic()
        report = run(inputs, out, args.steps, args.workers)
        second_s = time.monotonic() - t0
        after = finished(out)
        failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines() if line.strip()]
        redone = sorted(k for k, t in before.items() if after.get(k) != t)
        result = {
            "command": f"python benchmarks/batch_archive.py --images {args.images} --corrupt {args.corrupt} "
                       f"--steps {args.steps} --workers {args.workers} --kill-after {args.kill_after:g}",
            "killed": killed, "first_run_s": round(first_s, 1), "done_before_kill": len(before),
            "second_run_s": round(second_s, 1), "second_run": {"restored": report.restored, "skipped": report.skipped,
                                                               "failed": report.failed, "pending": report.pending},
            "restored_total": len(after), "failures_listed": sorted(Path(f["path"]).name for f in failures),
            "finished_folders_redone": redone,
            "ok": (len(after) == len(good) and sorted(Path(f["path"]).name for f in failures)
                   == sorted(p.name for p in bad) and not redone and report.skipped == len(before))}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    OUT.mkdir(exist_ok=True)
    (OUT / "batch_archive.json").write_text(json.dumps(result, indent=1) + "\n")
    s = result["second_run"]
    (OUT / "batch_archive.md").write_text("\n".join([
        "# Batch archive: kill and resume at full scale", "",
        f"Command: `{result['command']}` (torch {torch.__version__}, {os.cpu_count()} CPU cores, local engine).", "",
        f"- {args.images} inputs, {args.corrupt} of them corrupt; first run killed (SIGKILL, parent and workers) "
        f"after {result['first_run_s']} s: {'yes' if killed else 'no, it finished first'}, with "
        f"{result['done_before_kill']} images complete.",
        f"- Second run (same command), {result['second_run_s']} s: {s['restored']} restored, {s['skipped']} "
        f"skipped (done before the kill), {s['failed']} failed, {s['pending']} pending.",
        f"- In the end: {result['restored_total']} image folders; failures.jsonl lists "
        f"{', '.join(result['failures_listed'])}; finished folders rewritten by the second run: "
        f"{len(redone)}.", f"- All as required: {'yes' if result['ok'] else 'NO'}.", ""]))


if __name__ == "__main__":
    main()
