"""Training triples for BIGPrior fusion nets: degrade, invert, write folders FusionTriples reads; resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genprior
from genprior.io.images import save_image
from genprior.methods import MGANPrior
from genprior.methods.fusion_data import FusionTriples
from genprior.methods.fusion_inversions import degrade, denoised_observations, make_triples


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    torch.set_num_threads(1)
    G = genprior.load_generator("genprior-digits32", device="cpu")
    folder = tmp_path_factory.mktemp("clean")
    with torch.no_grad():
        images = G.render(G.mapping(G.make_z([100, 101, 102])))
    files = [folder / f"digit{i}.png" for i in range(3)]
    for img, f in zip(images, files):
        save_image(img, f)
    return G, files


@pytest.mark.parametrize("task", ["denoise", "inpaint"])
def test_triples_are_written_readable_and_resumed(digits, tmp_path, task):
    G, files = digits
    inversion = MGANPrior(G, layer=8, codes=2, steps=3, vgg_weight=0)
    out = make_triples(G, files[:2], task, tmp_path / task, inversion=inversion, seed=5, progress=False)
    drawn = json.loads((out / "degradations.json").read_text())
    assert sorted(drawn) == ["digit0", "digit1"] and drawn["digit1"]["seed"] == 6
    key = "sigma" if task == "denoise" else "hole"
    assert all(0.02 <= d[key] <= 0.5 for d in drawn.values()) and drawn["digit0"][key] != drawn["digit1"][key]
    g = np.load(out / "gan" / "digit0.npy", allow_pickle=False)
    assert g.shape == (32, 32, 3) and g.dtype == np.float32 and 0 <= g.min() and g.max() <= 1  # grey -> RGB
    data = FusionTriples(out / "obs", out / "gan", out / "gt", task=task,
                         masks=out / "mask" if task == "inpaint" else None)
    item = data[0]
    assert item["y"].shape == item["g"].shape == item["x"].shape == (3, 32, 32)
    if task == "denoise":  # the noise is kept unclipped and matches the recorded σ roughly
        noise = (item["y"] - item["x"]).std().item()
        assert 0.5 * drawn["digit0"]["sigma"] < noise < 1.5 * drawn["digit0"]["sigma"]
    else:
        assert item["mask"].shape == (1, 32, 32) and 0 < item["mask"].mean() < 0.5
    stamp = (out / "gan" / "digit0.npy").stat().st_mtime_ns
    make_triples(G, files, task, out, inversion=inversion, seed=5, progress=False)  # resumes: one new image
    assert (out / "gan" / "digit0.npy").stat().st_mtime_ns == stamp
    assert sorted(json.loads((out / "degradations.json").read_text())) == ["digit0", "digit1", "digit2"]


def test_degradations_follow_their_seed_and_range():
    a, info_a = degrade("denoise", 32, 7, sigma_range=(0.05, 0.05))
    assert info_a == {"sigma": pytest.approx(0.05)} and a.sigma == pytest.approx(0.05)
    _, one = degrade("inpaint", 32, 3)
    _, again = degrade("inpaint", 32, 3)
    assert one == again and 0.25 <= one["hole"] <= 0.5
    with pytest.raises(genprior.GenpriorError, match="unknown BIGPrior task"):
        degrade("deblur", 32, 0)


def test_colorization_triples_keep_the_observed_luma(tmp_path):
    from pathlib import Path

    from genprior.physics import Colorization

    G = genprior.load_generator("genprior-faces64", device="cpu")
    face = Path(genprior.__file__).parent / "samples" / "face.png"
    out = make_triples(G, [face], "colorize", tmp_path, inversion=MGANPrior.preset(G, "colorize", steps=2),
                       progress=False)
    item = FusionTriples(out / "obs", out / "gan", out / "gt", task="colorize")[0]
    assert item["y"].shape == (1, 64, 64) and item["g"].shape == item["x"].shape == (3, 64, 64)
    luma = Colorization().A(item["g"][None])[0]  # the GAN estimate carries the observation's luma
    diff = (luma - item["y"]).abs()
    assert diff.mean() < 1e-3 and diff.max() < 0.05  # exact but where a colour clips at 0 or 1


def test_denoised_observations_are_the_non_local_means_at_the_drawn_sigma(digits, tmp_path):
    from genprior.physics.denoising import classical_denoise

    G, files = digits
    inversion = MGANPrior(G, layer=8, codes=2, steps=1, vgg_weight=0)
    out = make_triples(G, files[:2], "denoise", tmp_path, inversion=inversion, seed=3, progress=False)
    folder = denoised_observations(out)
    sigma = json.loads((out / "degradations.json").read_text())["digit1"]["sigma"]
    y = torch.from_numpy(np.load(out / "obs" / "digit1.npy")).permute(2, 0, 1)[None]
    d = torch.from_numpy(np.load(folder / "digit1.npy")).permute(2, 0, 1)[None]
    assert torch.allclose(d, classical_denoise(y, sigma), atol=1e-6)
    truth = torch.from_numpy(np.load(out / "gt" / "digit1.npy")).permute(2, 0, 1)[None]
    assert (d - truth).square().mean() < (y.clamp(0, 1) - truth).square().mean() / 2
    stamp = (folder / "digit0.npy").stat().st_mtime_ns
    denoised_observations(out)  # resumes: existing files are kept
    assert (folder / "digit0.npy").stat().st_mtime_ns == stamp
