"""The batch engine: local workers and Ray, a corrupt input, a crashing input, interrupts that resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genprior.batch import run_batch
from genprior.errors import GenpriorError
from genprior.io.images import read_image, save_image
from genprior.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]


class UpscaleJob:
    """A cheap restoration: bicubic x2 of a grey image; PSNR against ``truth/<name>.png`` when it exists.

    Every call leaves a file in ``log`` (setup-<pid>, call-<name>-<uuid>) so tests can count work done. With
    ``stall_after`` > 0, calls after that many stall for 10 s (an interrupt then always lands mid-run, however
    loaded the machine).
    """

    def __init__(self, log: Path, truth: Path | None = None, delay: float = 0.0, crash_on: str = "",
                 fail_setup: bool = False, stall_after: int = 0) -> None:
        self.log, self.truth, self.delay, self.crash_on, self.fail_setup = log, truth, delay, crash_on, fail_setup
        self.stall_after = stall_after
        self.kernel = None

    def setup(self) -> None:
        if self.fail_setup:
            raise GenpriorError("genprior-nothing: no such model")
        self.kernel = "bicubic"  # stands for the weights a real job loads once
        (self.log / f"setup-{os.getpid()}").touch()

    def run_one(self, input_path: Path, out_dir: Path) -> dict:
        assert self.kernel == "bicubic", "setup() was not called in this worker"
        (self.log / f"call-{input_path.stem}-{uuid.uuid4().hex}").touch()
        if input_path.stem == self.crash_on:
            os._exit(3)  # a segfault or the OOM killer, as the driver sees it
        stall = self.stall_after and len(list(self.log.glob("call-*"))) > self.stall_after
        time.sleep(10 if stall else self.delay)
        y = read_image(input_path, channels=1)
        x = F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
        save_image(x, out_dir / "restored.png")
        truth = self.truth / f"{input_path.stem}.png" if self.truth else None
        if truth is None or not truth.exists():
            return {}
        return {"restored": {"psnr": psnr(x, read_image(truth, channels=1))[0]}}


def make_folder(root: Path, n: int, corrupt: tuple[str, ...] = ("bad",)) -> tuple[Path, Path, list[Path]]:
    """n grey 8x8 observations (and 16x16 truths) plus corrupt files; returns (inputs dir, truth dir, files)."""
    inputs, truth = root / "in", root / "truth"
    inputs.mkdir()
    truth.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        t = torch.rand(1, 16, 16, generator=gen)
        save_image(t, truth / f"img{i:02d}.png")
        save_image(F.avg_pool2d(t[None], 2)[0], inputs / f"img{i:02d}.png")
    for name in corrupt:
        (inputs / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    return inputs, truth, sorted(inputs.iterdir())


def calls(log: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in log.glob("call-*"):
        name = p.name[len("call-"):].rsplit("-", 1)[0]
        out[name] = out.get(name, 0) + 1
    return out


def read_summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def expected_psnr(inputs: Path, truth: Path, name: str) -> float:
    y = read_image(inputs / f"{name}.png", channels=1)
    x = F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    return float(psnr(x, read_image(truth / f"{name}.png", channels=1))[0])


def check_outcome(out: Path, inputs: Path, truth: Path, n: int) -> None:
    """n good results committed with PSNR, the corrupt file listed with its reason, the summary says so."""
    good = [f"img{i:02d}" for i in range(n)]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == good
    for name in good:
        assert sorted(p.name for p in (out / name).iterdir()) == ["batch.json", "restored.png"]
        assert read_image(out / name / "restored.png").shape == (1, 1, 16, 16)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["path"] == str(inputs / "bad.png")
    assert failures[0]["reason"].startswith(f"{inputs / 'bad.png'}: not a readable image")
    summary = read_summary(out)
    assert [summary[k]["status"] for k in sorted(summary)] == ["failed"] + ["ok"] * n
    assert summary["bad"]["reason"] == failures[0]["reason"]
    for name in good:
        assert float(summary[name]["restored.psnr"]) == pytest.approx(expected_psnr(inputs, truth, name), abs=1e-4)
        assert float(summary[name]["seconds"]) > 0


def test_local_engine_two_workers_restores_the_good_and_lists_the_corrupt(tmp_path):
    inputs, truth, files = make_folder(tmp_path, 5)
    log = tmp_path / "log"
    log.mkdir()
    report = run_batch(UpscaleJob(log, truth), files, tmp_path / "out", workers=2, show_progress=False)
    assert (report.restored, report.failed, report.skipped, report.pending, report.ok) == (5, 1, 0, 0, False)
    check_outcome(tmp_path / "out", inputs, truth, 5)
    assert len(list(log.glob("setup-*"))) == 2  # set up once in each of the 2 workers
    assert calls(log) == {**{f"img{i:02d}": 1 for i in range(5)}, "bad": 1}
    assert not list((tmp_path / "out").glob(".*.partial"))

    again = run_batch(UpscaleJob(log, truth), files, tmp_path / "out", workers=2, show_progress=False)
    assert (again.restored, again.skipped, again.failed) == (0, 5, 1)  # only the corrupt file was tried again
    assert calls(log)["bad"] == 2 and all(calls(log)[f"img{i:02d}"] == 1 for i in range(5))
    check_outcome(tmp_path / "out", inputs, truth, 5)


def test_a_fixed_input_is_removed_from_failures_on_the_next_run(tmp_path):
    inputs, truth, files = make_folder(tmp_path, 2)
    log = tmp_path / "log"
    log.mkdir()
    run_batch(UpscaleJob(log, truth), files, tmp_path / "out", show_progress=False)
    save_image(torch.full((1, 8, 8), 0.5), inputs / "bad.png", overwrite=True)
    report = run_batch(UpscaleJob(log, truth), files, tmp_path / "out", show_progress=False)
    assert (report.restored, report.skipped, report.failed, report.ok) == (1, 2, 0, True)
    assert not (tmp_path / "out" / "failures.jsonl").exists()
    assert read_summary(tmp_path / "out")["bad"]["status"] == "ok"


def test_a_worker_that_dies_is_replaced_and_its_input_failed_after_two_deaths(tmp_path):
    inputs, truth, files = make_folder(tmp_path, 3, corrupt=())
    save_image(torch.zeros(1, 8, 8), inputs / "crash.png")
    files = sorted(inputs.iterdir())
    log = tmp_path / "log"
    log.mkdir()
    report = run_batch(UpscaleJob(log, truth, crash_on="crash"), files, tmp_path / "out", workers=2,
                       show_progress=False)
    assert (report.restored, report.failed) == (3, 1)
    failure = json.loads((tmp_path / "out" / "failures.jsonl").read_text())
    assert failure["name"] == "crash"
    assert failure["reason"] == "its worker process died 2 times on it (a crash, or out of memory)"
    assert calls(log)["crash"] == 2


def test_bad_arguments_and_a_failing_setup_are_one_clear_error_before_work(tmp_path):
    inputs, truth, files = make_folder(tmp_path, 2, corrupt=())
    log = tmp_path / "log"
    log.mkdir()
    with pytest.raises(GenpriorError, match="a batch worker could not start: genprior-nothing: no such model"):
        run_batch(UpscaleJob(log, fail_setup=True), files, tmp_path / "out", workers=2, show_progress=False)
    assert not (tmp_path / "out").exists() and not calls(log)
    with pytest.raises(GenpriorError, match="unknown engine 'spark'; choose from local, ray"):
        run_batch(UpscaleJob(log), files, tmp_path / "out", engine="spark")
    with pytest.raises(GenpriorError, match="the batch job cannot be sent to workers"):
        run_batch(lambda: None, files, tmp_path / "out")
    (inputs / "img00.jpg").write_bytes(b"")
    with pytest.raises(GenpriorError, match=r"img00.jpg and .*img00.png would both write to .*out/img00; rename one"):
        run_batch(UpscaleJob(log), sorted(inputs.iterdir()), tmp_path / "out")
    (tmp_path / "mine" / "img00").mkdir(parents=True)
    with pytest.raises(GenpriorError, match=r"mine/img00 exists and is not a finished batch result; pass --overwrite"):
        run_batch(UpscaleJob(log), files, tmp_path / "mine")


DRIVER = """
import sys
from pathlib import Path
from test_batch import UpscaleJob
from genprior.batch import run_batch
inputs, log, truth, out, engine = map(Path, sys.argv[1:6])
try:
    run_batch(UpscaleJob(log, truth, delay=float(sys.argv[6]), stall_after=2), sorted(inputs.iterdir()), out,
              engine=str(engine), workers=2, summary_every=1)
except KeyboardInterrupt:
    sys.exit(130)
"""


def interrupted_run(tmp_path: Path, engine: str, sig: int, n: int = 8) -> tuple[Path, Path, Path, dict]:
    """Run a slow batch in a child process; send ``sig`` once 2 results are committed. Returns what was done."""
    inputs, truth, _ = make_folder(tmp_path, n)
    log, out = tmp_path / "log", tmp_path / "out"
    log.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    child = subprocess.Popen([sys.executable, "-c", DRIVER, str(inputs), str(log), str(truth), str(out), engine,
                              "0.4"], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*/batch.json"))) < 2:
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.05)
    os.killpg(child.pid, sig)  # the whole process group, as Ctrl-C on a terminal (SIGKILL: the driver only dies)
    stderr = child.communicate(timeout=60)[1]
    assert child.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), stderr
    if sig == signal.SIGINT:
        assert "interrupted:" in stderr and "run the same command again to resume" in stderr
    done = {p.name: (p / "batch.json").stat().st_mtime_ns for p in out.iterdir() if (p / "batch.json").exists()}
    assert all((out / name / "restored.png").exists() for name in done)
    assert 2 <= len(done) < n
    return inputs, truth, log, done


def resume_and_check(tmp_path: Path, engine: str, inputs: Path, truth: Path, log: Path, done: dict,
                     n: int = 8) -> None:
    before = calls(log)
    report = run_batch(UpscaleJob(log, truth), sorted(inputs.iterdir()), tmp_path / "out", engine=engine,
                       workers=2, show_progress=False)
    assert report.skipped == len(done) and report.restored == n - len(done)
    for name, mtime in done.items():  # finished results were neither redone nor rewritten
        assert calls(log)[name] == before[name] == 1
        assert (tmp_path / "out" / name / "batch.json").stat().st_mtime_ns == mtime
    check_outcome(tmp_path / "out", inputs, truth, n)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_local_interrupted_run_leaves_complete_folders_and_resumes(tmp_path, sig):
    inputs, truth, log, done = interrupted_run(tmp_path, "local", sig)
    out = tmp_path / "out"
    if sig == signal.SIGINT:  # Ctrl-C cleans up and writes the summary; a kill may leave a .partial for later
        assert not list(out.glob(".*.partial"))
        summary = read_summary(out)
        assert {k for k, row in summary.items() if row["status"] == "ok"} == set(done)
        assert "pending" in {row["status"] for row in summary.values()}
    resume_and_check(tmp_path, "local", inputs, truth, log, done)


@pytest.fixture()
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}})
    yield ray
    ray.shutdown()


def test_ray_engine_two_workers_matches_the_local_engine(tmp_path, ray_local):
    inputs, truth, files = make_folder(tmp_path, 5)
    log = tmp_path / "log"
    log.mkdir()
    report = run_batch(UpscaleJob(log, truth), files, tmp_path / "out", engine="ray", workers=2,
                       show_progress=False)
    assert (report.engine, report.restored, report.failed) == ("ray", 5, 1)
    check_outcome(tmp_path / "out", inputs, truth, 5)
    assert len(list(log.glob("setup-*"))) == 2
    assert ray_local.is_initialized()  # a Ray the caller started is left running
    with pytest.raises(GenpriorError, match="a batch worker could not start: genprior-nothing: no such model"):
        run_batch(UpscaleJob(log, fail_setup=True), files, tmp_path / "out2", engine="ray", workers=2)


def test_ray_interrupted_run_resumes_without_redoing_finished_images(tmp_path):
    inputs, truth, log, done = interrupted_run(tmp_path, "ray", signal.SIGINT)
    assert not list((tmp_path / "out").glob(".*.partial"))
    resume_and_check(tmp_path, "ray", inputs, truth, log, done)
