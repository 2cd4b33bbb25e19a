"""Calibration bounds and files, the report, MCMC diagnostics, and the calibrate / restore --calibration commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genprior
from genprior.calibration import (Calibration, choose_lambda, generator_hash, interval, miscoverage,
                                  wsr_upper_bound)
from genprior.errors import GenpriorError
from genprior.methods.mcmc import effective_sample_size, pick_draws, split_rhat
from conftest import run_cli as run  # noqa: E402


def test_wsr_bound_covers_the_mean_and_tightens_with_more_data():
    rng = np.random.default_rng(0)
    misses = 0
    for trial in range(200):
        x = rng.beta(1, 9, size=30)  # mean 0.1
        misses += wsr_upper_bound(x, 0.1) < 0.1
    assert misses <= 0.1 * 200 + 5  # the bound holds with probability >= 1 - δ
    small, large = rng.beta(1, 9, size=20), rng.beta(1, 9, size=400)
    assert wsr_upper_bound(large, 0.1) - large.mean() < wsr_upper_bound(small, 0.1) - small.mean()
    assert wsr_upper_bound(np.ones(5), 0.1) == 1.0


def test_choose_lambda_controls_the_risk():
    gen = torch.Generator().manual_seed(0)
    truth = torch.randn(40, 1, 16, 16, generator=gen)
    mean, std = torch.zeros_like(truth), torch.full_like(truth, 0.5)  # a posterior twice too narrow

    def loss_at(lam):
        lo, hi = interval(mean, lam, "std", std=std)
        return miscoverage(lo, hi, truth).numpy()

    lam_crc, risk, stat = choose_lambda(loss_at, 0.1, 0.1, "crc")
    assert 3.0 < lam_crc < 3.6 and risk <= 0.1 and stat <= 0.1  # 1.645 σ = 3.29 half-widths of 0.5
    lam_rcps, _, ucb = choose_lambda(loss_at, 0.1, 0.1, "rcps")
    assert lam_rcps >= lam_crc and ucb <= 0.1
    with pytest.raises(GenpriorError, match="no interval scale"):
        choose_lambda(lambda lam: np.ones(10), 0.1, 0.1, "rcps")


def test_quantile_interval_and_miscoverage():
    samples = torch.linspace(0, 1, 11).view(1, 11, 1, 1, 1).expand(1, 11, 1, 2, 2)
    lo, hi = interval(samples.mean(1), 1.0, "quantile", samples=samples)
    assert torch.allclose(lo, torch.full_like(lo, 0.05)) and torch.allclose(hi, torch.full_like(hi, 0.95))
    truth = torch.tensor([0.0, 0.5, 0.5, 1.0]).view(1, 1, 2, 2)
    assert float(miscoverage(lo, hi, truth)) == 0.5


def test_mcmc_diagnostics_on_known_chains():
    gen = torch.Generator().manual_seed(0)
    iid = torch.randn(4, 2, 400, generator=gen)
    ess = effective_sample_size(iid)
    assert ((ess > 0.6 * 1600) & (ess < 1.6 * 1600)).all()
    sticky = iid.cumsum(-1) * 0.1  # a random walk mixes slowly
    assert (effective_sample_size(sticky) < 100).all()
    assert (split_rhat(iid) < 1.02).all()
    apart = iid + torch.tensor([0.0, 0.0, 3.0, 3.0]).view(4, 1, 1)  # chains in two modes
    assert (split_rhat(apart) > 1.5).all()
    assert pick_draws(4, 10, 6) == [(0, 9), (1, 9), (2, 9), (3, 9), (0, 0), (1, 0)]


def test_calibration_file_round_trip_and_refusals(tmp_path):
    cal = Calibration(alpha=0.1, delta=0.1, lam=2.5, kind="std", bound="rcps", generator_sha256="ab" * 32,
                      generator="genprior-digits32", task_options={"task": "superres", "factor": 4, "kernel": "box",
                                                                  "mask": "center", "sigma": 0.02},
                      method="vi", method_settings={}, n_images=20, risk=0.05, risk_bound=0.09, raw_coverage=0.7)
    back = Calibration.load(cal.save(tmp_path / "c.json"))
    assert back == cal and "probability >= 0.9" in back.guarantee()
    opts = {"task": "superres", "factor": 4, "kernel": "box", "mask": "center", "sigma": 0.02}
    back.check("ab" * 32, opts, "vi")
    with pytest.raises(GenpriorError, match="another generator"):
        back.check("cd" * 32, opts, "vi")
    with pytest.raises(GenpriorError, match="made for factor 4, not 8"):
        back.check("ab" * 32, {**opts, "factor": 8}, "vi")
    with pytest.raises(GenpriorError, match="made for task 'superres', not 'inpaint'"):
        back.check("ab" * 32, {**opts, "task": "inpaint"}, "vi")
    with pytest.raises(GenpriorError, match="--method vi, not mcmc"):
        back.check("ab" * 32, opts, "mcmc")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(GenpriorError, match="not a genprior calibration file"):
        Calibration.load(tmp_path / "bad.json")


def test_generator_hash_tells_models_apart():
    a = genprior.load_generator("genprior-digits32", "cpu")
    b = genprior.load_generator("genprior-digits32", "cpu")
    assert generator_hash(a) == generator_hash(b)
    with torch.no_grad():
        next(b.parameters()).add_(1e-3)
    assert generator_hash(a) != generator_hash(b)


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, shared):
    import gzip

    from PIL import Image

    folder = tmp_path_factory.mktemp("digits")
    with gzip.open(shared / "data" / "digits" / "t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    for i in range(6):
        Image.fromarray(np.pad(raw[9000 + i], 2)).save(folder / f"d{i}.png")
    return folder


def test_calibrate_then_restore_with_the_calibration(digit_folder, tmp_path):
    quick = ["--steps", "5", "--set", "map_steps=20", "--set", "map_tune_steps=5"]
    out = tmp_path / "calib.json"
    res = run("calibrate", digit_folder, "-g", "genprior-digits32", "--task", "superres", "--sigma", "0.02",
              "--method", "vi", "--samples", "4", "--bound", "crc", "--alpha", "0.3", *quick, "-o", out)
    assert res.exit_code == 0, res.output
    cal = json.loads(out.read_text())
    assert cal["n_images"] == 6 and cal["kind"] == "std" and cal["lam"] > 0 and cal["task_options"]["factor"] == 4
    assert cal["generator_sha256"] == generator_hash(genprior.load_generator("genprior-digits32", "cpu"))
    img = digit_folder / "d0.png"
    res = run("restore", img, "-g", "genprior-digits32", "--task", "superres", "--sigma", "0.02", "--method", "vi",
              "--samples", "4", *quick, "--simulate", "--kernel", "box", "--calibration", out, "-o", tmp_path / "r")
    assert res.exit_code == 0, res.output
    d = tmp_path / "r" / "d0"
    assert (d / "lower.png").exists() and (d / "upper.png").exists() and (d / "index.html").exists()
    back = genprior.Reconstruction.load(d)
    assert (back.images["lower"] <= back.mean + 1e-6).all() and (back.images["upper"] >= back.mean - 1e-6).all()
    assert back.config["calibration"]["lambda"] == pytest.approx(cal["lam"])
    assert "expected share" in back.config["calibration"]["guarantee"]
    html = (d / "index.html").read_text()
    import re

    assert not re.search(r"(src|href)\s*=\s*['\"]?https?:", html) and "<script" not in html  # opens offline
    assert "Calibrated interval" in html
    res = run("restore", img, "-g", "genprior-digits32", "--task", "superres", "--factor", "8", "--sigma", "0.02",
              "--method", "vi", *quick, "--simulate", "--kernel", "box", "--calibration", out, "-o", tmp_path / "s")
    assert res.exit_code == 1 and "made for factor 4, not 8" in res.output
    res = run("restore", img, "-g", "genprior-digits32", "--task", "superres", "--calibration", out,
              "-o", tmp_path / "t")
    assert res.exit_code == 1 and "needs a method with samples" in res.output


def test_report_is_rebuilt_from_the_saved_state(digit_folder, tmp_path):
    res = run("restore", digit_folder / "d1.png", "-g", "genprior-digits32", "--task", "inpaint", "--mask",
              "center", "--method", "vi", "--samples", "4", "--steps", "5", "--set", "map_steps=20", "--set",
              "map_tune_steps=5", "--simulate", "-o", tmp_path / "r")
    assert res.exit_code == 0, res.output
    d = tmp_path / "r" / "d1"
    first = (d / "report.png").read_bytes()
    (d / "report.png").unlink()
    res = run("report", d)
    assert res.exit_code == 0 and (d / "report.png").read_bytes() == first
    from PIL import Image

    assert Image.open(d / "report.png").size[0] > 4 * 128  # observation, restored, truth, samples, std, residual
    html = (d / "index.html").read_text()
    assert "std (top" in html and "|A(x) - y|" in html
