"""DCGAN: the tutorial-layout generator, config inference, and the real pretrained face weights.

The face check is a statistical sanity check on samples of the pretrained DigiFace DCGAN
(``shared/weights/dcgan-digiface64.safetensors``). Its bounds were set from measurements (seeds 0..63):

=====================================  ==============  ==========================================
statistic                              real weights    random weights (default init), 24+ nets
=====================================  ==============  ==========================================
per-image pixel std, seeds 0..15       0.243 .. 0.509  eval: ~0.001; train-mode BN: 0.52 .. 0.65
cheek band - eye band, mean image      0.216           |.| <= 0.03
mirror corr. of mean image (RGB)       0.887           eval: <= 0.67; train-mode BN: <= 0.26
=====================================  ==============  ==========================================

Over other disjoint sets of 64 seeds the real weights gave eye/cheek 0.17..0.22 and mirror corr. 0.74..0.96.
The faces are tight crops that fill the frame, so the centre of the mean image is *not* brighter than its
border (-0.08 here); that contrast is not used.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from genprior.errors import CheckpointError
from genprior.generators import build_generator
from genprior.generators.dcgan import DCGANGenerator, dcgan_config_from_state_dict, dcgan_state_dict_shapes

# Face-check bounds (see the module docstring for the measurements behind them).
STD_RANGE = (0.15, 0.75)
MIN_EYE_CHEEK = 0.08
MIN_MIRROR_CORR = 0.6


@pytest.fixture(scope="module")
def real_sd(shared):
    path = shared / "weights" / "dcgan-digiface64.safetensors"
    assert path.is_file(), f"missing pretrained DCGAN weights: {path}"
    return load_file(str(path))


@pytest.fixture(scope="module")
def real_G(real_sd):
    return DCGANGenerator.from_state_dict(real_sd)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-12))


def face_stats(G: DCGANGenerator) -> dict[str, float]:
    """Statistics of samples from seeds 0..63 (pixel stds from the first 16)."""
    with torch.no_grad():
        x = G.synthesis(G.make_z(range(64)))
    std = x[:16].flatten(1).std(dim=1)
    mean_img = x.mean(0)  # (3, 64, 64)
    lum = mean_img.mean(0)
    return {
        "std_min": std.min().item(),
        "std_max": std.max().item(),
        "eye_cheek": (lum[34:42, 16:48].mean() - lum[22:30, 16:48].mean()).item(),  # cheeks brighter than eyes
        "mirror_corr": _corr(mean_img, mean_img.flip(-1)),
        "centre_minus_border": (lum[20:44, 20:44].mean() - torch.cat([lum[:6].flatten(), lum[-6:].flatten(),
                                lum[6:-6, :6].flatten(), lum[6:-6, -6:].flatten()]).mean()).item(),
    }


def face_check_failures(stats: dict[str, float]) -> list[str]:
    fails = []
    if not (STD_RANGE[0] <= stats["std_min"] and stats["std_max"] <= STD_RANGE[1]):
        fails.append(f"per-image std {stats['std_min']:.3f}..{stats['std_max']:.3f} outside {STD_RANGE}")
    if stats["eye_cheek"] < MIN_EYE_CHEEK:
        fails.append(f"eye band not darker than cheek band: {stats['eye_cheek']:.3f} < {MIN_EYE_CHEEK}")
    if stats["mirror_corr"] < MIN_MIRROR_CORR:
        fails.append(f"mean image not mirror-symmetric: corr {stats['mirror_corr']:.3f} < {MIN_MIRROR_CORR}")
    return fails


# ---------------------------------------------------------------------------------------------- real weights
def test_weights_metadata_and_dtype(shared):
    path = shared / "weights" / "dcgan-digiface64.safetensors"
    with safe_open(str(path), "pt") as f:
        info = json.loads(f.metadata()["info"])
    assert "nz=100" in info["architecture"] and "64x64" in info["output"]


def test_infer_config_from_real_weights(real_sd):
    assert dcgan_config_from_state_dict(real_sd) == {"nz": 100, "ngf": 64, "nc": 3, "resolution": 64}
    assert DCGANGenerator.config_from_state_dict(real_sd) == {"nz": 100, "ngf": 64, "nc": 3, "resolution": 64}


def test_real_weights_load_as_float32(real_G, real_sd):
    sd = real_G.state_dict()
    assert set(sd) == set(real_sd)
    for k, v in sd.items():
        if v.is_floating_point():
            assert v.dtype == torch.float32, k
            assert torch.equal(v, real_sd[k].float()), k
    assert not real_G.training
    assert real_G.init_kwargs == {"nz": 100, "ngf": 64, "nc": 3, "resolution": 64}


def test_real_samples(real_G):
    z = real_G.make_z(range(16))
    with torch.no_grad():
        x = real_G.synthesis(z)
        x4 = real_G.synthesis(z.view(16, 100, 1, 1))
    assert x.shape == (16, 3, 64, 64)
    assert x.dtype == torch.float32
    assert torch.equal(x, x4)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std(dim=0).mean() > 0.1, "samples barely depend on z"
    assert x.flatten(1).std(dim=1).min() > 0.05, "a sample is (nearly) constant"


def test_real_samples_look_like_faces(real_G):
    stats = face_stats(real_G)
    fails = face_check_failures(stats)
    assert not fails, f"pretrained DCGAN fails the face check: {fails}; stats {stats}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_face_check_rejects_random_weights(seed):
    torch.manual_seed(seed)
    R = DCGANGenerator().eval()  # same architecture, torch's default init
    fails = face_check_failures(face_stats(R))
    assert fails, "the face check passed a random-weight network"
    # In train mode BatchNorm uses batch statistics, so pixel stds look plausible; the structural checks
    # (eye/cheek contrast, mirror symmetry) must then fail on their own.
    R.train()
    stats = face_stats(R)
    assert STD_RANGE[0] <= stats["std_min"], stats
    structural = [f for f in face_check_failures(stats) if "per-image std" not in f]
    assert len(structural) == 2, f"random train-mode net passed a structural face check: {stats}"


def test_split_real(real_G):
    z = real_G.make_z(range(4))
    with torch.no_grad():
        ref = real_G.synthesis(z)
        for k in range(1, len(real_G.main)):
            head, tail = real_G.split(k)
            feat = head(z)
            assert feat.ndim == 4 and feat.shape[0] == 4
            assert torch.equal(tail(feat), ref), f"split at {k}"
    head, tail = real_G.split(3)
    assert head.main[0] is real_G.main[0] and tail[0] is real_G.main[3], "split must share the modules"


@pytest.mark.parametrize("bad_k", [0, -1, 14, 1.5, True, None])
def test_split_rejects_bad_k(real_G, bad_k):
    with pytest.raises(ValueError, match="1 <= k < 14"):
        real_G.split(bad_k)


def test_round_trip_config(real_G):
    G2 = build_generator(json.loads(json.dumps(real_G.config)))
    assert isinstance(G2, DCGANGenerator)
    G2.load_state_dict(real_G.state_dict(), strict=True)
    G2.eval()
    z = real_G.make_z([7, 8])
    with torch.no_grad():
        assert torch.equal(G2.synthesis(z), real_G.synthesis(z))


# ---------------------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize(
    "cfg",
    [
        {"nz": 100, "ngf": 64, "nc": 3, "resolution": 64},
        {"nz": 16, "ngf": 8, "nc": 1, "resolution": 32},
        {"nz": 20, "ngf": 4, "nc": 3, "resolution": 128},
    ],
)
def test_layouts_and_inference(cfg):
    G = DCGANGenerator(**cfg).eval()
    sd = G.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == dcgan_state_dict_shapes(**cfg)
    assert dcgan_config_from_state_dict(sd) == cfg
    n_conv = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in G.main)
    assert n_conv == {32: 4, 64: 5, 128: 6}[cfg["resolution"]]
    assert all(m.bias is None for m in G.main if isinstance(m, torch.nn.ConvTranspose2d))
    assert isinstance(G.main[-1], torch.nn.Tanh)
    with torch.no_grad():
        x = G.synthesis(torch.randn(2, cfg["nz"]))
    assert x.shape == (2, cfg["nc"], cfg["resolution"], cfg["resolution"])


def test_tutorial_keys_64():
    keys = list(DCGANGenerator().state_dict())
    assert keys[0] == "main.0.weight" and keys[-1] == "main.12.weight"
    assert "main.1.running_var" in keys and "main.10.num_batches_tracked" in keys


def test_bad_constructor_and_input():
    with pytest.raises(ValueError, match="resolution"):
        DCGANGenerator(resolution=48)
    with pytest.raises(ValueError, match=r"\(N, 100\)"):
        DCGANGenerator().synthesis(torch.zeros(2, 99))


# ---------------------------------------------------------------------------------------------- bad state dicts
def test_missing_key_raises(real_sd):
    sd = dict(real_sd)
    del sd["main.4.running_var"]
    with pytest.raises(CheckpointError, match=r"missing keys \['main\.4\.running_var'\]"):
        dcgan_config_from_state_dict(sd)
    with pytest.raises(CheckpointError, match="main.4.running_var"):
        DCGANGenerator.from_state_dict(sd)


def test_wrong_shape_raises(real_sd):
    sd = dict(real_sd)
    sd["main.6.weight"] = torch.zeros(256, 100, 4, 4, dtype=torch.float16)
    with pytest.raises(CheckpointError, match=r"main\.6\.weight: \(256, 100, 4, 4\) \(expected \(256, 128, 4, 4\)\)"):
        dcgan_config_from_state_dict(sd)


def test_unexpected_and_foreign_keys_raise(real_sd):
    sd = dict(real_sd)
    sd["main.0.bias"] = torch.zeros(512)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['main\.0\.bias'\]"):
        dcgan_config_from_state_dict(sd)
    with pytest.raises(CheckpointError, match="not a DCGAN"):
        dcgan_config_from_state_dict({"generator.fc.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match="empty"):
        dcgan_config_from_state_dict({})


def test_wrong_depth_raises(real_sd):
    # Without the final conv the last BatchNorm (main.10) has no conv after it.
    sd = {k: v for k, v in real_sd.items() if not k.startswith("main.12.")}
    with pytest.raises(CheckpointError, match=r"unexpected keys \['main\.10\.bias'"):
        dcgan_config_from_state_dict(sd)
    sd = {k: v for k, v in real_sd.items() if not k.startswith(("main.9.", "main.10.", "main.12."))}
    with pytest.raises(CheckpointError, match="resolution 16; supported"):
        dcgan_config_from_state_dict(sd)
