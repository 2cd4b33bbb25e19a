"""The command line: sample, convert, models; clean errors with exit code 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import genprior
from genprior.cli import parse_range

from conftest import run_cli as run  # noqa: E402


def test_parse_range():
    assert parse_range("0,1,4-6") == [0, 1, 4, 5, 6]
    assert parse_range("7") == [7]


def test_sample_grid_from_the_dcgan_face_prior(tmp_path):
    out = tmp_path / "grid.png"
    res = run("sample", "-g", "dcgan-digiface64", "--seeds", "0-3", "--cols", "2", "-o", out)
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(out))
    assert img.shape == (2 + 2 * 66, 2 + 2 * 66, 3)
    assert img[2:66, 2:66].std() > 20  # a picture, not a blank
    again = run("sample", "-g", "dcgan-digiface64", "--seeds", "0-3", "--cols", "2", "-o", out)
    assert again.exit_code == 1 and "exists" in again.output
    res = run("sample", "-g", "dcgan-digiface64", "--seeds", "0-3", "--cols", "2", "-o", out, "--overwrite")
    assert res.exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out)), img), "same seeds must give the same grid"


def test_sample_conditional_needs_a_class(shared, tmp_path):
    pkl = shared / "fixtures" / "stylegan2" / "C.pkl"
    res = run("sample", "-g", pkl, "--seeds", "0-1", "-o", tmp_path / "c.png")
    assert res.exit_code == 1 and "conditional" in res.output
    res = run("sample", "-g", pkl, "--seeds", "0-1", "--class", "3", "-o", tmp_path / "c.png")
    assert res.exit_code == 0, res.output


def test_convert_then_load(shared, tmp_path):
    dst = tmp_path / "b.safetensors"
    res = run("convert", shared / "fixtures" / "stylegan2" / "B.pkl", dst)
    assert res.exit_code == 0, res.output
    G = genprior.load_generator(dst, device="cpu")
    assert G.config["kwargs"]["synthesis_kwargs"]["conv_clamp"] == 256
    res = run("convert", shared / "fixtures" / "stylegan2" / "B.pkl", dst)
    assert res.exit_code == 1 and "refusing to overwrite" in res.output


def test_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04garbage")
    res = run("convert", bad, tmp_path / "out.safetensors")
    assert res.exit_code == 1
    assert res.output.startswith("error: ") and "Traceback" not in res.output
    assert not (tmp_path / "out.safetensors").exists()


def test_models_list_and_offline_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("GENPRIOR_HOME", str(tmp_path))
    res = run("models", "list")
    assert res.exit_code == 0 and "brgm-ffhq-1024" in res.output and "dcgan-digiface64" in res.output
    res = run("models", "fetch", "brgm-ffhq-1024", "--offline")
    assert res.exit_code == 1
    assert "brgm-ffhq.pkl" in res.output or "ffhq" in res.output
    assert str(tmp_path) in res.output


def test_restore_simulated_superres(tmp_path, shared):
    out = tmp_path / "out"
    face = shared / "data" / "faces-utk64" / "75_0_0_20170117171021853.jpg"
    res = run("restore", face, "-g", "dcgan-digiface64", "--task", "superres", "--factor", "4", "--simulate",
              "--steps", "3", "-o", out)
    assert res.exit_code == 0, res.output
    d = out / face.stem
    assert {"restored.png", "observation.png", "truth.png", "pseudo_inverse.png", "state.safetensors",
            "config.json"} <= {p.name for p in d.iterdir()}
    assert np.asarray(Image.open(d / "observation.png")).shape == (16, 16, 3)
    import json

    meta = json.loads((d / "config.json").read_text())
    assert meta["config"]["physics"]["factor"] == 4 and "psnr" in meta["history"]["metrics"]["restored"]
    again = run("restore", face, "-g", "dcgan-digiface64", "--task", "superres", "--simulate", "--steps", "3", "-o", out)
    assert again.exit_code == 1 and "exists" in again.output


def test_restore_inpaint_writes_merged_and_converts_grey(tmp_path, shared):
    grey = shared / "data" / "brain-mri64" / "test" / "notumor_Te-noTr_0000.png"
    res = run("restore", grey, "-g", "dcgan-digiface64", "--task", "inpaint", "--mask", "center", "--steps", "2",
              "-o", tmp_path)
    assert res.exit_code == 0, res.output
    merged = np.asarray(Image.open(tmp_path / grey.stem / "merged.png"))
    observed = np.asarray(Image.open(tmp_path / grey.stem / "observation.png"))
    assert merged.shape == (64, 64, 3)  # the grey file became RGB for the colour generator
    assert np.array_equal(merged[:10], observed[:10])  # observed pixels pasted back


def test_restore_bad_input(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    res = run("restore", bad, "-g", "dcgan-digiface64", "--task", "superres", "-o", tmp_path / "o")
    assert res.exit_code == 1 and "not a readable image" in res.output
    res = run("restore", tmp_path, "-g", "dcgan-digiface64", "--task", "denoise", "-o", tmp_path / "o")
    assert res.exit_code == 1 and ("--sigma" in res.output or "not a readable image" in res.output)
    good = Path(genprior.__file__).parent / "samples" / "face.png"
    res = run("restore", good, "-g", "dcgan-digiface64", "--task", "superres", "--factor", "3", "-o", tmp_path / "o")
    assert res.exit_code == 1 and "does not divide" in res.output


def test_train_tiny_run_and_empty_folder(tmp_path, shared):
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    for f in sorted((shared / "data" / "faces-utk64").iterdir())[:8]:
        shutil.copy(f, data / f.name)
    out = tmp_path / "run"
    args = ["train", data, out, "--resolution", "16", "--kimg", "0.016", "--batch", "8", "--g-channel-base", "256",
            "--g-channel-max", "32", "--d-channel-base", "256", "--d-channel-max", "32", "--z-dim", "16", "--w-dim",
            "16", "--mapping-layers", "2", "--snapshot-kimg", "0.008", "--progress-sec", "0"]
    res = run(*args)
    assert res.exit_code == 0, res.output
    G = genprior.load_generator(out / "network-latest.safetensors", device="cpu")
    assert (G.resolution, G.channels, G.z_dim) == (16, 3, 16)
    tuned = tmp_path / "tuned"  # fine-tuning (the shipped faces64 was): G from a generator file
    res = run(*[tuned if a == out else a for a in args], "--recipe", "vision-aided")
    assert res.exit_code == 1 and "vision-aided recipe needs resolution >= 32" in res.output  # reaches the config
    res = run(*[tuned if a == out else a for a in args], "--init-generator", out / "network-latest.safetensors")
    assert res.exit_code == 0, res.output
    assert "start from" in res.output and (tuned / "network-latest.safetensors").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run("train", empty, tmp_path / "run2", "--resolution", "16", "--kimg", "1")
    assert res.exit_code == 1
    assert "empty" in res.output.lower() or "no images" in res.output.lower(), res.output


def test_restore_bigprior_colorize_and_wrong_task(tmp_path, shared):
    face = shared / "data" / "faces-utk64" / "75_0_0_20170117171021853.jpg"
    net = shared / "data" / "bigprior-nets" / "col_bedroom_1" / "net_24.pth"
    res = run("restore", face, "-g", "dcgan-digiface64", "--task", "colorize", "--method", "bigprior", "--fusion", net,
              "--steps", "3", "--simulate", "-o", tmp_path / "o")
    assert res.exit_code == 0, res.output
    d = tmp_path / "o" / face.stem
    assert {"restored.png", "phi.png", "gan_estimate.png", "observation.png"} <= {p.name for p in d.iterdir()}
    back = genprior.Reconstruction.load(d)
    assert back.phi.shape == (1, 3, 64, 64) and set(back.tensors) == {"z", "alpha"}
    res = run("restore", face, "-g", "dcgan-digiface64", "--task", "inpaint", "--method", "bigprior", "--fusion", net,
              "--steps", "3", "-o", tmp_path / "p")
    assert res.exit_code == 1 and "'colorize'" in res.output and "'inpaint'" in res.output
    res = run("restore", face, "-g", "dcgan-digiface64", "--task", "colorize", "--method", "bigprior",
              "-o", tmp_path / "q")
    assert res.exit_code == 1 and "--fusion" in res.output


def test_bigprior_test_command_on_official_outputs(tmp_path, shared):
    import shutil

    src = shared / "data"
    for sub in ("obs", "gan", "gt"):
        (tmp_path / sub).mkdir()
    shutil.copy(src / "bigprior-col-bedroom" / "input" / "250.webp", tmp_path / "obs")
    shutil.copy(src / "bigprior-col-bedroom" / "mGANoutput" / "250.webp", tmp_path / "gan")
    shutil.copy(src / "lsun256" / "bedroom" / "0250.webp", tmp_path / "gt")
    res = run("bigprior", "test", "--observations", tmp_path / "obs", "--estimates", tmp_path / "gan", "--truths",
              tmp_path / "gt", "--task", "colorize", "--model", src / "bigprior-nets" / "col_bedroom_1" / "net_24.pth",
              "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    import json

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    stored = np.load(src / "bigprior-nets" / "col_bedroom_1" / "AUC.npy")
    assert abs(metrics["per_image"]["250"]["auc"] - float(stored[0])) < 2e-3
    assert (tmp_path / "out" / "250_phi.npy").exists()


def test_restore_map_with_noise_optimisation_on_a_shipped_stylegan2(tmp_path):
    import torch

    brain = Path(genprior.__file__).parent / "samples" / "brain.png"
    res = run("restore", brain, "-g", "genprior-brain64", "--task", "superres", "--factor", "4", "--steps", "3",
              "--optimize-noise", "--perceptual", "vgg", "--simulate", "-o", tmp_path)
    assert res.exit_code == 0, res.output
    back = genprior.Reconstruction.load(tmp_path / "brain")
    G = genprior.load_generator("genprior-brain64")
    assert set(back.noise) == set(G.synthesis.noise_shapes())
    assert back.config["optimize_noise"] is True and back.config["perceptual_used"] == "vgg"
    assert torch.equal(back.render(G), back.mean)


def test_evaluate_scores_a_shipped_model_against_its_data(tmp_path, shared):
    import json

    from genprior.metrics.generative import cached_fid_inception

    digits = shared / "data" / "digits" / "t10k-images-idx3-ubyte.gz"
    out = tmp_path / "eval.json"
    res = run("evaluate", digits, "-g", "genprior-digits32", "--n", "30", "--holdout", "1000", "-o", out)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["n"] == 30 and report["holdout"] == 1000 and report["feature_layer"] == "relu5_3"
    assert 0 <= report["precision"] <= 1 and 0 <= report["recall"] <= 1 and report["fd_vgg"] > 0
    if cached_fid_inception() is None:  # FID needs the Inception weights; their absence is said, not hidden
        assert report["fid"] is None and "no Inception weights cached" in res.output
    else:
        assert report["fid"] > 0 and f"FID {report['fid']:.2f}" in res.output
    again = run("evaluate", digits, "-g", "genprior-digits32", "--n", "30", "--holdout", "1000", "-o", out)
    assert again.exit_code == 1 and "exists" in again.output  # the report is never replaced silently
    res = run("evaluate", digits, "-g", "genprior-digits32", "--n", "30", "--holdout", "1000", "-o", out, "--overwrite")
    assert json.loads(out.read_text()) == report, "seeded: the same command gives the same numbers"
    # the same model scored against faces (converted to 32 px grey) is much further away
    folder = tmp_path / "faces"
    folder.mkdir()
    for f in sorted((shared / "data" / "faces-utk64").glob("*.jpg"))[:30]:
        (folder / f.name).write_bytes(f.read_bytes())
    with pytest.warns(UserWarning, match="resized to 32x32"):  # the conversion is stated
        faces = run("evaluate", folder, "-g", "genprior-digits32", "--n", "30")
    assert faces.exit_code == 0, faces.output
    assert float(faces.output.split("FD-VGG ")[1].split()[0]) > 2 * report["fd_vgg"]
    bad = run("evaluate", digits, "-g", "genprior-digits32", "--n", "1")
    assert bad.exit_code == 1 and "must be between 2" in bad.output
