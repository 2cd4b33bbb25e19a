"""StyleGAN2 conformance: genprior's network reproduces the official stylegan2-ada-pytorch outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import genprior
from genprior.generators import build_generator

CONFIGS = ["A", "B", "C"]


def load_fixture(shared, cfg):
    tensors = load_file(str(shared / "fixtures" / "stylegan2" / f"{cfg}.safetensors"))
    meta = json.loads((shared / "fixtures" / "stylegan2" / f"{cfg}.json").read_text())
    G = build_generator({"family": "stylegan2", "kwargs": meta["init_kwargs"]}).eval()
    G.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("fixture.")}, strict=True)
    return G, {k[8:]: v for k, v in tensors.items() if k.startswith("fixture.")}, meta


def assert_close(a, b, atol, what):
    diff = (a - b).abs().max().item()
    assert diff <= atol, f"{what}: max abs diff {diff:.3g} > {atol}"


@pytest.mark.parametrize("cfg", CONFIGS)
def test_state_dict_names_order_and_size(shared, cfg):
    G, _, meta = load_fixture(shared, cfg)
    assert {k: list(v.shape) for k, v in G.state_dict().items()} == meta["state_dict"]
    assert list(G.state_dict()) == list(meta["state_dict"])
    assert sum(p.numel() for p in G.parameters()) == meta["num_parameters"]
    assert G.num_ws == meta["num_ws"]


@pytest.mark.parametrize("cfg", CONFIGS)
@torch.no_grad()
def test_mapping_and_truncation(shared, cfg):
    G, fx, _ = load_fixture(shared, cfg)
    c = fx.get("c")
    assert_close(G.mapping(fx["z"], c), fx["ws"], 2e-5, "ws")
    assert_close(G.mapping(fx["z"], c, truncation_psi=0.7), fx["ws_trunc"], 2e-5, "ws_trunc")
    assert_close(G.mapping(fx["z"], c, truncation_psi=0.7, truncation_cutoff=4), fx["ws_trunc_cutoff4"], 2e-5, "cutoff4")


@pytest.mark.parametrize("cfg", CONFIGS)
@torch.no_grad()
def test_synthesis_matches_official(shared, cfg):
    G, fx, _ = load_fixture(shared, cfg)
    assert_close(G.synthesis(fx["ws"], noise_mode="const"), fx["img_const"], 1e-4, "img_const")
    assert_close(G.synthesis(fx["ws_trunc"], noise_mode="const"), fx["img_trunc_const"], 1e-4, "img_trunc_const")
    assert_close(G.synthesis(fx["ws"], noise_mode="none"), fx["img_none"], 1e-4, "img_none")
    assert_close(G.synthesis(fx["wplus"], noise_mode="const"), fx["img_wplus_const"], 1e-4, "img_wplus_const")
    assert_close(G(fx["z"], fx.get("c")), fx["img_const"], 1e-4, "G(z, c)")


@pytest.mark.parametrize("cfg", CONFIGS)
@torch.no_grad()
def test_unfused_training_path_agrees(shared, cfg):
    G, fx, _ = load_fixture(shared, cfg)
    out = G.synthesis(fx["wplus"], fused_modconv=False)
    assert_close(out, fx["img_wplus_const"], 1e-4, "unfused modconv")


@torch.no_grad()
def test_w_index_map_matches_official(shared):
    G, _, meta = load_fixture(shared, "A")
    slices = G.synthesis.w_slices()
    for name, row in meta["w_index_map"].items():
        _, block, layer = name.split(".")
        first, _ = slices[int(block[1:])]
        offset = {"conv0": 0, "conv1": 0 if block == "b4" else 1, "torgb": 1 if block == "b4" else 2}[layer]
        assert first + offset == row, name


@torch.no_grad()
def test_noise_modes_and_override(shared):
    G, fx, _ = load_fixture(shared, "A")
    ws = fx["wplus"][:2]
    const_maps = {name: getattr(G.synthesis, name.split(".")[0]).get_submodule(name.split(".")[1]).noise_const
                  for name in G.synthesis.noise_shapes()}
    assert_close(G.synthesis(ws, noise=const_maps), G.synthesis(ws), 0, "explicit noise == const")
    torch.manual_seed(0)
    r1 = G.synthesis(ws, noise_mode="random")
    torch.manual_seed(0)
    r2 = G.synthesis(ws, noise_mode="random")
    assert torch.equal(r1, r2)
    assert (r1 - G.synthesis(ws)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(ws[:, :3])


@torch.no_grad()
def test_public_api(shared):
    G = genprior.load_generator(shared / "fixtures" / "stylegan2" / "A.pkl", device="cpu")
    assert (G.z_dim, G.w_dim, G.num_ws, G.resolution, G.channels) == (128, 128, 10, 64, 3)
    assert G.latent_space == "w+"
    z = G.make_z([0, 1])
    assert torch.equal(z, G.make_z([0, 1])) and not torch.equal(z[0], z[1])
    ws = G.mapping(z, truncation_psi=0.5)
    assert ws.shape == (2, 10, 128)
    img = G.render(ws)
    assert img.shape == (2, 3, 64, 64) and img.min() >= 0 and img.max() <= 1
    raw = G.synthesis(ws)
    assert_close(G.render(ws, clamp=False), (raw + 1) / 2, 1e-6, "render = (synthesis + 1) / 2")
    assert_close(G.render(ws[:, 0]), img, 0, "a single w broadcasts to every layer")
    assert not any(p.requires_grad for p in G.parameters())


def test_gradients_reach_the_latent(shared):
    G = genprior.load_generator(shared / "fixtures" / "stylegan2" / "B.pkl", device="cpu")
    ws = G.mapping(G.make_z([3])).clone().requires_grad_(True)
    G.render(ws, clamp=False).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
