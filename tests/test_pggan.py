"""PGGAN conformance: the re-implementation reproduces mGANprior's ``PGGANGeneratorNet`` on the shared fixtures.

Fixtures (``shared/fixtures/pggan``): ``res64`` (fused_scale=False, the setting of the released models) and
``res32_fused`` (the conv-transpose path). Keys ``fixture.*`` are inputs/outputs; the rest is the official
state dict, ``lod`` included.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from genprior.generators import build_generator
from genprior.generators.pggan import PGGANGenerator

ATOL = 5e-5  # fixtures/README.md: PGGAN features and images
CONFIGS = ["res64", "res32_fused"]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = _max_diff(actual, expected)
    assert diff <= ATOL, f"{what}: max abs diff {diff:.3e} > {ATOL:.0e}"


@pytest.fixture(scope="module", params=CONFIGS)
def fx(request, shared):
    folder = shared / "fixtures" / "pggan"
    tensors = load_file(str(folder / f"{request.param}.safetensors"))
    meta = json.loads((folder / f"{request.param}.json").read_text())
    weights = {k: v for k, v in tensors.items() if not k.startswith("fixture.")}
    data = {k[len("fixture."):]: v for k, v in tensors.items() if k.startswith("fixture.")}
    G = PGGANGenerator(**meta["init_kwargs"])
    G.load_state_dict(weights, strict=True)
    G.eval()
    return {"name": request.param, "meta": meta, "weights": weights, "data": data, "G": G}


def test_config(fx):
    G, meta = fx["G"], fx["meta"]
    assert G.family == "pggan"
    assert G.init_kwargs == meta["init_kwargs"]
    assert G.z_dim == meta["init_kwargs"]["z_space_dim"]
    assert G.w_dim is None and G.num_ws == 0 and G.latent_space == "z"
    assert G.resolution == meta["init_kwargs"]["resolution"]
    assert G.channels == meta["init_kwargs"]["image_channels"]
    assert G.num_layers == meta["num_layers_attr"]
    assert sum(p.numel() for p in G.parameters()) == meta["num_parameters"]
    assert [name for name, _ in G.named_children()] == meta["children_order"]
    assert json.loads(json.dumps(G.config)) == G.config


def test_state_dict_loads_exactly(fx):
    G, weights, meta = fx["G"], fx["weights"], fx["meta"]
    sd = G.state_dict()
    assert list(sd) == list(meta["state_dict"]), "state-dict keys or their order differ from the official"
    for k, v in weights.items():
        assert list(sd[k].shape) == meta["state_dict"][k], k
        assert torch.equal(sd[k], v), f"{k} not loaded exactly"


def test_synthesis_matches_official(fx):
    G, d = fx["G"], fx["data"]
    with torch.no_grad():
        img = G.synthesis(d["z"])
        img_4d = G.synthesis(d["z"].view(*d["z"].shape, 1, 1), noise_mode="random")  # noise_mode is ignored
        img_call = G(d["z"])
    _assert_close(img, d["img"], f"{fx['name']} img")
    assert torch.equal(img, img_4d) and torch.equal(img, img_call)


def test_lod_hard_switch(fx):
    G, d = fx["G"], fx["data"]
    with torch.no_grad():
        G.lod.fill_(1.0)
        try:
            img = G.synthesis(d["z"])
        finally:
            G.lod.fill_(0.0)
        img0 = G.synthesis(d["z"])
    _assert_close(img, d["img_lod1"], f"{fx['name']} img_lod1")
    _assert_close(img0, d["img"], f"{fx['name']} img after restoring lod=0")


def test_split_at_stored_k(fx):
    G, d, meta = fx["G"], fx["data"], fx["meta"]
    assert meta["composing_k_stored"], "fixture stores no split point"
    for k in meta["composing_k_stored"]:
        head, tail = G.split(k)
        with torch.no_grad():
            feat = head(d["z"])
            img = tail(feat)
        _assert_close(feat, d[f"feat_k{k}"], f"{fx['name']} feat_k{k}")
        _assert_close(img, d[f"img_from_k{k}"], f"{fx['name']} img_from_k{k}")


def test_composing_modules_and_shapes(fx):
    G, d, meta = fx["G"], fx["data"], fx["meta"]
    seq = G.composing_modules()
    names = [name for name, _ in seq.named_children()]
    assert names == meta["composing_modules"]
    assert G.composing_module_names() == meta["composing_modules"]
    assert all(m is getattr(G, n) for n, m in seq.named_children()), "composing modules must be shared, not copies"
    shapes = {int(k): tuple(v) for k, v in meta["composing_feature_shape_after_k_modules"].items()}
    assert sorted(shapes) == list(range(len(names) + 1))
    z = d["z"][:2]
    for k, shape in shapes.items():
        assert G.composing_feature_shape(k) == shape, f"analytic shape after k={k}"
        if 1 <= k < len(names):
            head, tail = G.split(k)
            with torch.no_grad():
                feat = head(z)
                img = tail(feat)
            assert tuple(feat.shape) == (2, *shape), f"feature shape after k={k}"
            assert tuple(img.shape) == (2, G.channels, G.resolution, G.resolution)
    with torch.no_grad():
        full = seq(z.view(2, G.z_dim, 1, 1))
    _assert_close(full, d["img"][:2], f"{fx['name']} all composing modules in sequence")


@pytest.mark.parametrize("bad_k", [0, -1, "end", 2.0, True, None])
def test_split_rejects_bad_k(fx, bad_k):
    G = fx["G"]
    n = len(G.composing_modules())
    k = n if bad_k == "end" else bad_k
    with pytest.raises(ValueError, match="1 <= k <"):
        G.split(k)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="resolution"):
        PGGANGenerator(resolution=48)
    with pytest.raises(ValueError, match="resolution"):
        PGGANGenerator(resolution=4)
    G = PGGANGenerator(resolution=8, z_space_dim=16, fmaps_base=64, fmaps_max=8)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        G.synthesis(torch.zeros(2, 17))
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        G.synthesis(torch.zeros(2, 16, 2, 2))


def test_round_trip_config(fx):
    G, d, weights = fx["G"], fx["data"], fx["weights"]
    config = json.loads(json.dumps(G.config))
    G2 = build_generator(config)
    assert isinstance(G2, PGGANGenerator) and G2.config == G.config
    G2.load_state_dict(G.state_dict(), strict=True)
    G2.eval()
    with torch.no_grad():
        assert torch.equal(G2.synthesis(d["z"]), G.synthesis(d["z"]))
    for k, v in weights.items():
        assert torch.equal(G2.state_dict()[k], v)
