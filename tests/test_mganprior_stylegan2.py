"""mGANprior on StyleGAN2: the block split is exact, W-space multi-code inversion in-paints, bad k is explained,
and ``genprior restore --method bigprior`` runs on a shipped (grey) StyleGAN2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import genprior
from genprior.cli import main
from genprior.methods import MGANPrior
from genprior.methods.fusion import FusionNet
from genprior.methods.fusion_nets import BoundedPhi
from genprior.methods.mganprior import preset_layer
from genprior.metrics import psnr
from genprior.physics import Inpainting, make_mask


def random_wplus(G, n: int = 2) -> torch.Tensor:
    """W+ (n, num_ws, w_dim) with different rows, so that a tail reading the wrong rows would show."""
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else None
    ws = G.mapping(G.make_z(range(n)), c)
    return ws + 0.5 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("source", ["A", "B", "C", "genprior-digits32"])
@torch.no_grad()
def test_split_round_trip_is_exact(shared, source):
    torch.set_num_threads(1)
    path = source if source.startswith("genprior-") else shared / "fixtures" / "stylegan2" / f"{source}.pkl"
    G = genprior.load_generator(path, device="cpu")
    ws = random_wplus(G)
    ref = G.synthesis(ws, noise_mode="const")
    for k in G.synthesis.block_resolutions[:-1]:
        head, tail = G.split(k)
        state = head(ws)
        block = getattr(G.synthesis, f"b{k}")
        assert state.shape == (2, block.conv1.weight.shape[0] + G.channels, k, k)
        diff = (tail(state, ws) - ref).abs().max().item()
        assert diff <= 1e-6, f"{source} k={k}: max abs diff {diff:.3g}"
    w = ws[:, 0]  # one w for every row
    head, tail = G.split(G.synthesis.block_resolutions[1])
    assert torch.equal(tail(head(w), w), G.synthesis(w[:, None].repeat(1, G.num_ws, 1)))


def test_one_code_with_unit_importance_is_the_generator():
    torch.set_num_threads(1)
    G = genprior.load_generator("genprior-digits32", device="cpu")
    inv = MGANPrior(G, layer=8, codes=1, vgg_weight=0)
    w = G.mapping(G.make_z([3, 4]))[:, :1]  # (2, 1, w_dim)
    params = inv.init_codes(2, seed=0, device=torch.device("cpu"))
    assert set(params) == {"w", "w_tail", "alpha"} and params["alpha"].shape == (2, 1, 129)
    assert torch.equal(params["w_tail"], params["w"][:, 0])  # the tail code starts at the mean of the codes
    with torch.no_grad():
        out = inv.compose(w, torch.ones(2, 1, 129))
        assert (out - G.render(w[:, 0], clamp=False)).abs().max() <= 1e-5  # unfused modulation


def test_inpainting_inversion_beats_the_pseudo_inverse():
    torch.set_num_threads(1)
    G = genprior.load_generator("genprior-digits32", device="cpu")
    truth = G.render(G.mapping(G.make_z([1000])))
    physics = Inpainting(make_mask("center:0.4", G.resolution))  # 12x12 hole (14 %) in the middle of the digit
    y = physics.A(truth)
    res = MGANPrior(G, layer=8, codes=3, steps=80, vgg_weight=0)(y, physics, seed=0)
    pinv = physics.A_dagger(y)
    hole = (~physics.observed).expand_as(truth)

    def hole_psnr(x: torch.Tensor) -> float:
        return float(-10 * torch.log10((x - truth)[hole].square().mean()))

    # measured: overall 18.3 dB vs 13.5 (pseudo-inverse); in the hole 10.5 dB vs 5.6
    assert psnr(res.mean, truth).item() > psnr(pinv, truth).item() + 3
    assert hole_psnr(res.mean) > hole_psnr(pinv) + 3
    assert {k: tuple(v.shape) for k, v in res.tensors.items()} == {"w": (1, 3, 64), "w_tail": (1, 64),
                                                                   "alpha": (1, 3, 129)}
    assert res.config["code_space"] == "w" and res.history["loss"]["inversion"][-1] < 0.1 * res.history["loss"]["inversion"][0]


def test_presets_and_bad_split_points(shared):
    brain = genprior.load_generator("genprior-brain64", device="cpu")
    assert MGANPrior.preset(brain, "inpaint").cfg.layer == 8  # PGGAN index 4 composes 8x8 features
    assert MGANPrior.preset(brain, "colorize").cfg.layer == 16
    assert MGANPrior.preset(brain, "inpaint", layer=32).cfg.layer == 32  # an override is a block resolution
    digits = genprior.load_generator("genprior-digits32", device="cpu")
    assert preset_layer(digits, 8) == 16  # capped at resolution / 2
    dcgan = genprior.load_generator("dcgan-digiface64", device="cpu")
    assert MGANPrior.preset(dcgan, "colorize").cfg.layer == 6  # other families keep the official index
    for k in (3, 32, 0, 8.0):
        with pytest.raises(ValueError, match=r"block resolution below 32, one of \[4, 8, 16\]"):
            MGANPrior(digits, layer=k)
    conditional = genprior.load_generator(shared / "fixtures" / "stylegan2" / "C.pkl", device="cpu")
    with pytest.raises(ValueError, match="conditional"):
        MGANPrior(conditional, layer=4)


def test_cli_bigprior_inpaint_with_a_grey_stylegan2(tmp_path):
    fusion = FusionNet(BoundedPhi(in_channels=3, layers=2, features=8, use_mask=True), "inpaint")  # untrained
    save_file(fusion.net.state_dict(), str(tmp_path / "net_1.safetensors"), metadata=fusion.metadata())
    brain = Path(genprior.__file__).parent / "samples" / "brain.png"
    args = ["restore", brain, "-g", "genprior-brain64", "--task", "inpaint", "--method", "bigprior", "--fusion",
            tmp_path / "net_1.safetensors", "--steps", "2", "--simulate", "-o", tmp_path / "o"]
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    back = genprior.Reconstruction.load(tmp_path / "o" / "brain")
    assert back.mean.shape == back.phi.shape == (1, 1, 64, 64)  # grey in, grey out through the RGB fusion net
    assert {k: tuple(v.shape) for k, v in back.tensors.items()} == {"w": (1, 10, 128), "w_tail": (1, 128),
                                                                    "alpha": (1, 10, 129)}
    assert back.config["inversion"]["layer"] == 8 and back.config["inversion_result"]["code_space"] == "w"
    hole = ~make_mask("center", 64).bool()  # the restore default; the untrained net gives 0.5 outside holes
    assert torch.equal(back.phi[0, 0][hole], torch.ones(int(hole.sum())))
    assert torch.allclose(back.phi[0, 0][~hole], torch.full((int((~hole).sum()),), 0.5))


@torch.no_grad()
def test_unfused_modulation_of_the_split_matches_the_fused_one():
    torch.set_num_threads(1)
    G = genprior.load_generator("genprior-digits32", device="cpu")
    ws = random_wplus(G, 3)
    head, tail = G.split(8)
    fused = tail(head(ws), ws)
    head.fused_modconv = tail.fused_modconv = False  # what MGANPrior uses: one convolution for all codes
    diff = (tail(head(ws), ws) - fused).abs().max().item()
    assert 0 < diff <= 1e-5  # a different path (not the same ops), same values
    inv = MGANPrior(G, layer=8)
    assert inv.head.fused_modconv is False and inv.tail.fused_modconv is False


def digit_inpainting(G):
    truth = G.render(G.mapping(G.make_z([1000])))
    physics = Inpainting(make_mask("center:0.4", G.resolution))
    return physics.A(truth), physics


def test_best_of_many_starts_begins_at_the_best_candidate():
    torch.set_num_threads(1)
    G = genprior.load_generator("genprior-digits32", device="cpu")
    y, physics = digit_inpainting(G)
    first = {}
    for init, start in (("random", "mean"), ("best", "mean"), ("best", "best")):
        res = MGANPrior(G, layer=8, codes=4, steps=1, vgg_weight=0, init=init, start=start,
                        candidates=64)(y, physics, seed=0)
        first[init, start] = res.history["loss"]["inversion"][0]
    inv = MGANPrior(G, layer=8, codes=4, vgg_weight=0, candidates=64)
    gen = torch.Generator().manual_seed(0)
    seed = int(torch.randint(2**31 - 1, (1,), generator=gen))  # the inversion seed run() draws from seed 0
    params = inv.init_codes(1, seed, torch.device("cpu"))
    inv.best_start(y, physics, params, seed)
    with torch.no_grad():
        z = torch.randn(64, G.z_dim, generator=torch.Generator().manual_seed(seed + 1))
        candidates = physics.A(G.render(G.mapping(z)[:, 0], clamp=False))
        best = (candidates - y).flatten(1).square().mean(1).min().item()
    assert first["best", "best"] == pytest.approx(best, rel=1e-4)  # starts at the best candidate's image
    assert first["best", "best"] < 0.9 * first["random", "mean"]  # measured: 0.0209 vs 0.0268


def test_plateau_stops_the_inversion_early():
    torch.set_num_threads(1)
    G = genprior.load_generator("genprior-digits32", device="cpu")
    y, physics = digit_inpainting(G)
    res = MGANPrior(G, layer=8, codes=2, steps=400, vgg_weight=0, tol=0.05, patience=5)(y, physics, seed=0)
    run = res.config["steps_run"]
    assert 10 <= run < 400 and run % 5 == 0 and len(res.history["loss"]["inversion"]) == run
    curve = res.history["loss"]["inversion"]
    assert min(curve[-5:]) > (1 - 0.05) * min(curve[:-5])  # the last window gained less than tol


def test_plateau_and_bad_fast_settings():
    from genprior.methods.optim import Plateau

    stop = Plateau(0.01, patience=2)
    assert [stop(torch.tensor([v, 1.0])) for v in (4.0, 2.0, 1.0, 0.999, 0.999, 0.999)] == [False] * 5 + [True]
    for bad in ({"tol": 0.0}, {"patience": 0}):
        with pytest.raises(ValueError, match="Plateau needs"):
            Plateau(**{"tol": 0.1, "patience": 3, **bad})
    G = genprior.load_generator("genprior-digits32", device="cpu")
    for bad, match in (({"init": "zeros"}, "init must be one of"), ({"start": "mix"}, "start must be one of"),
                       ({"tol": -1.0}, "tol must be >= 0"), ({"codes": 8, "candidates": 4}, "candidates must be")):
        with pytest.raises(ValueError, match=match):
            MGANPrior(G, layer=8, **bad)


@pytest.mark.parametrize("generator, sample, task", [("genprior-brain64", "brain.png", "denoise"),
                                                     ("genprior-faces64", "face.png", "inpaint"),
                                                     ("genprior-faces64", "face.png", "colorize"),
                                                     ("genprior-faces64", "face.png", "denoise")])
def test_cli_bigprior_takes_the_shipped_fusion_net(tmp_path, generator, sample, task):
    image = Path(genprior.__file__).parent / "samples" / sample
    args = ["restore", image, "-g", generator, "--task", task, "--method", "bigprior", "--steps", "2", "--simulate",
            "-o", tmp_path / "o"]
    res = CliRunner().invoke(main, [str(a) for a in args + (["--sigma", "0.1"] if task == "denoise" else [])])
    assert res.exit_code == 0, res.output
    back = genprior.Reconstruction.load(tmp_path / "o" / Path(sample).stem)
    assert Path(back.config["fusion_source"]).name == f"{generator}-{task}-fusion.safetensors"
    assert back.config["fusion"]["task"] == task and back.config["fusion"]["net"] == "bounded"
    assert back.phi.shape == back.mean.shape and 0 <= back.phi.min() and back.phi.max() <= 1
    if generator == "genprior-faces64" and task == "denoise":  # fused with the non-local means of y
        assert genprior.FusionNet.load(back.config["fusion_source"]).data_term == "nl_means"
