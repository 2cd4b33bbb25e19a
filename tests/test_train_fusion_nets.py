"""scripts/train_fusion_nets.py: triples of a shipped generator's training images, a BoundedPhi, its record."""

from __future__ import annotations

import json

import pytest
import torch

from genprior.methods import FusionNet
from conftest import load_script  # noqa: E402



@pytest.fixture(scope="module")
def script():
    return load_script("train_fusion_nets")


def test_training_split_excludes_the_held_out_images(script, shared):
    faces = script.training_files(shared, "genprior-faces64", 5)
    held_out = set(sorted((shared / "data" / "faces-utk64").iterdir())[-1000:])
    assert len(faces) == 5 and not held_out & set(faces)
    brains = script.training_files(shared, "genprior-brain64", 3)
    assert len(brains) == 3 and all(f.parent.name == "train" for f in brains)
    with pytest.raises(SystemExit, match="no data split known"):
        script.training_files(shared, "genprior-digits32", 3)


def test_a_tiny_run_writes_a_loadable_net_and_resumes(script, tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    args = ["--out", str(tmp_path), "--generators", "genprior-brain64", "--tasks", "inpaint", "--images", "2",
            "--epochs", "1", "--steps", "2"]
    try:
        script.main(args)
        net_file = tmp_path / "genprior-brain64-inpaint-fusion.safetensors"
        net = FusionNet.load(net_file)
        assert (net.task, net.kind, net.in_channels) == ("inpaint", "bounded", 3)
        record = json.loads(net_file.with_suffix(".json").read_text())
        assert record["training_images"] == 2 and record["inversion"]["steps"] == 2
        assert record["inversion"]["method"] == "mganprior" and record["epochs"] == 1
        triples = tmp_path / "genprior-brain64" / "inpaint" / "triples"
        stamp = {p.name: p.stat().st_mtime_ns for p in (triples / "gan").iterdir()}
        script.main(args)  # same run: triples kept, training already complete
        assert {p.name: p.stat().st_mtime_ns for p in (triples / "gan").iterdir()} == stamp
    finally:
        torch.set_num_threads(threads)


def test_a_denoising_net_fuses_with_the_non_local_means(script, tmp_path):
    from genprior.methods.bigprior import fusion_input
    from genprior.physics import Denoising
    from genprior.physics.denoising import classical_denoise

    threads = torch.get_num_threads()
    try:
        script.main(["--out", str(tmp_path), "--generators", "genprior-brain64", "--tasks", "denoise", "--images", "1",
                     "--epochs", "1", "--steps", "1"])
    finally:
        torch.set_num_threads(threads)
    net = FusionNet.load(tmp_path / "genprior-brain64-denoise-fusion.safetensors")
    assert net.data_term == "nl_means" and (tmp_path / "genprior-brain64" / "denoise" / "runs").is_dir()
    assert json.loads((tmp_path / "genprior-brain64-denoise-fusion.json").read_text())["data_term"] == "nl_means"
    assert len(list((tmp_path / "genprior-brain64" / "denoise" / "triples" / "obs_nlm").iterdir())) == 1
    y = Denoising(0.1)(torch.full((1, 3, 16, 16), 0.5), seed=0)
    assert torch.equal(fusion_input(net, y, Denoising(0.1)), classical_denoise(y, 0.1))
    official_like = FusionNet(net.net, "denoise")  # no data_term in its info: fuses with y itself
    assert official_like.data_term == "observation" and torch.equal(fusion_input(official_like, y, Denoising(0.1)), y)
