"""Every bad input to `genprior restore` gets one clear line and a non-zero exit, before any heavy work; one probe
per case (issue 14). Quick restorations use the 32-px digits model with few steps and no range extension."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import genprior

QUICK = ["-g", "genprior-digits32", "--steps", "2", "--extension", "none"]
from conftest import run_cli as run  # noqa: E402


@pytest.fixture()
def digit(tmp_path) -> Path:
    """A 32x32 grey image file."""
    rng = np.random.default_rng(0)
    path = tmp_path / "digit.png"
    Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8), mode="L").save(path)
    return path


def one_error_line(res) -> str:
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code != 0 and len(lines) == 1, res.output
    assert "Traceback" not in res.output
    return lines[0]


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_bad_sigma(digit, tmp_path, value):
    line = one_error_line(run("restore", digit, *QUICK, "--task", "denoise", "--sigma", value, "-o", tmp_path / "o"))
    assert "--sigma must be a finite number >= 0" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["0", "-3"])
def test_bad_steps(digit, tmp_path, value):
    line = one_error_line(run("restore", digit, "-g", "genprior-digits32", "--task", "superres", "--steps", value,
                              "-o", tmp_path / "o"))
    assert "--steps must be >= 1" in line


def test_samples_zero_is_refused_before_the_work(digit, tmp_path):
    line = one_error_line(run("restore", digit, *QUICK, "--task", "inpaint", "--method", "vi", "--samples", "0",
                              "-o", tmp_path / "o"))
    assert "--samples must be >= 2" in line


@pytest.mark.parametrize("fill,message", [(0, "all hole"), (255, "no hole")])
def test_masks_without_a_hole_or_without_data(digit, tmp_path, fill, message):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((32, 32), fill, np.uint8), mode="L").save(mask)
    line = one_error_line(run("restore", digit, *QUICK, "--task", "inpaint", "--mask", mask, "-o", tmp_path / "o"))
    assert message in line and str(mask) in line


def test_unknown_mask_name_and_wrong_size(digit, tmp_path):
    line = one_error_line(run("restore", digit, *QUICK, "--task", "inpaint", "--mask", "circle", "-o", tmp_path / "o"))
    assert "--mask 'circle'" in line
    mask = tmp_path / "mask.png"
    Image.fromarray(np.pad(np.zeros((8, 8), np.uint8), 12, constant_values=255), mode="L").save(mask)
    assert Image.open(mask).size == (32, 32)
    big = tmp_path / "big.png"
    Image.fromarray(np.pad(np.zeros((8, 8), np.uint8), 28, constant_values=255), mode="L").save(big)
    line = one_error_line(run("restore", digit, *QUICK, "--task", "inpaint", "--mask", big, "-o", tmp_path / "o"))
    assert "64x64 but the generator's images are 32x32" in line


def test_unwritable_output_is_refused_before_the_work(digit, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if (locked / "probe").parent.stat().st_mode & 0o200 == 0 and not __import__("os").access(locked, 2):
            line = one_error_line(run("restore", digit, *QUICK, "--task", "superres", "-o", locked / "out"))
            assert "cannot write there" in line
        else:  # running as root: writing is allowed anyway; a file in the way is the unwritable case
            blocker = tmp_path / "file"
            blocker.write_text("x")
            line = one_error_line(run("restore", digit, *QUICK, "--task", "superres", "-o", blocker / "out"))
            assert "cannot write there" in line
    finally:
        locked.chmod(0o700)


def test_sixteen_bit_png_is_read_at_full_depth(tmp_path):
    values = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 61 + 1000).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)  # a 16-bit grey PNG
    res = run("restore", path, *QUICK, "--task", "superres", "--simulate", "-o", tmp_path / "o")
    assert res.exit_code == 0, res.output
    back = genprior.Reconstruction.load(tmp_path / "o" / "deep")
    assert np.allclose(back.images["truth"][0, 0].numpy(), values / 65535, atol=1e-6)
    assert back.images["truth"].max() < 1  # not clipped to white
    assert "inf" not in json.dumps(back.history["metrics"])


def test_conversions_are_stated(tmp_path):
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((32, 32, 4), np.uint8), mode="RGBA").save(rgba)
    res = run("restore", rgba, *QUICK, "--task", "superres", "--simulate", "-o", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "alpha dropped" in res.output
    grey = tmp_path / "grey.png"
    Image.fromarray(np.zeros((64, 64), np.uint8), mode="L").save(grey)
    res = run("restore", grey, "-g", "dcgan-digiface64", "--steps", "2", "--extension", "none", "--task", "superres",
              "--simulate", "-o", tmp_path / "p")
    assert res.exit_code == 0, res.output
    assert "grey image repeated to 3 channels" in res.output


def test_a_corrupt_file_in_a_folder_does_not_stop_the_others(digit, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        (folder / f"good{i}.png").write_bytes(digit.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    res = run("restore", folder, *QUICK, "--task", "superres", "--simulate", "-o", tmp_path / "o")
    assert res.exit_code == 1 and "1 of 3 inputs failed" in res.output, res.output
    assert (tmp_path / "o" / "good0" / "restored.png").exists() and (tmp_path / "o" / "good1" / "restored.png").exists()
    failures = [json.loads(line) for line in (tmp_path / "o" / "failures.jsonl").read_text().splitlines()]
    assert [f["name"] for f in failures] == ["broken"] and "not a readable image" in failures[0]["reason"]
    assert (tmp_path / "o" / "summary.csv").exists()


def test_ctrl_c_during_start_up_is_one_line(digit, tmp_path, monkeypatch):
    import genprior.io.checkpoints as checkpoints

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "load_generator", interrupted)
    res = run("restore", digit, *QUICK, "--task", "superres", "-o", tmp_path / "o")
    assert res.exit_code == 130 and res.output.strip() == "interrupted" and not (tmp_path / "o").exists()


def test_logs_off_a_terminal_are_short_lines(digit, tmp_path):
    res = run("restore", digit, "-g", "genprior-digits32", "--steps", "30", "--task", "superres", "--simulate",
              "-o", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "\r" not in res.output and len(res.output) < 4000
    lpips = [line for line in res.output.splitlines() if "LPIPS" in line]
    assert len(lpips) <= 1 and "UserWarning" not in res.output


def test_unknown_method_setting(digit, tmp_path):
    line = one_error_line(run("restore", digit, *QUICK, "--task", "superres", "--set", "speed=11", "-o", tmp_path / "o"))
    assert "--set" in line and "'speed'" in line
    line = one_error_line(run("restore", digit, *QUICK, "--task", "superres", "--set", "consistency=wobbly",
                              "-o", tmp_path / "o"))
    assert "consistency must be one of" in line


def test_far_observations_and_flat_kernels_are_stated(tmp_path):
    noise = tmp_path / "noise.png"
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((32, 32)) > 0.5).astype(np.uint8) * 255, mode="L").save(noise)  # binary noise
    res = run("restore", noise, *QUICK, "--task", "superres", "--factor", "2", "--simulate", "-o", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "far from anything this generator makes" in res.output
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((16, 16), 128, np.uint8), mode="L").save(flat)
    res = run("restore", flat, *QUICK, "--task", "superres", "--factor", "2", "-o", tmp_path / "p")
    assert res.exit_code == 0, res.output
    assert "kernel cannot be estimated" in res.output
