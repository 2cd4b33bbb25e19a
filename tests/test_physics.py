"""Forward models: one invariant checked over a registry of operators, then operator-specific checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from genprior.physics import (
    BRGM_HOLE_FRACTIONS,
    LUMA_601,
    Colorization,
    Composed,
    Denoising,
    Inpainting,
    Physics,
    SuperResolution,
    brgm_mask,
    center_mask,
    make_mask,
    mask_from_file,
    physics_from_config,
    random_boxes_mask,
    random_pixels_mask,
    save_mask,
)


@dataclass
class Case:
    make: Callable[[], Physics]
    shape: tuple[int, int, int, int]  # a valid input shape
    bad_shape: tuple[int, int, int, int] | None  # an input shape the operator must refuse
    exact_pinv: bool  # A(A_dagger(A(x))) == A(x)
    keeps_range: bool  # noiseless A maps [0, 1] into [0, 1]
    linear: bool = True


def _soft_mask(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(size, size, generator=g).where(torch.rand(size, size, generator=g) > 0.3, torch.zeros(()))


CASES: dict[str, Case] = {
    "sr2-box": Case(lambda: SuperResolution(2), (2, 3, 16, 16), (2, 3, 15, 16), True, True),
    "sr8-box": Case(lambda: SuperResolution(8, "box"), (1, 1, 32, 32), (1, 1, 32, 36), True, True),
    "sr4-bicubic_aa": Case(lambda: SuperResolution(4, "bicubic_aa"), (2, 3, 32, 32), (2, 3, 30, 32), False, False),
    "sr4-bicubic_noaa": Case(lambda: SuperResolution(4, "bicubic_noaa"), (2, 3, 32, 32), (2, 3, 32, 33),
                             False, False),
    "inpaint-center": Case(lambda: Inpainting(center_mask(32)), (2, 3, 32, 32), (2, 3, 16, 32), True, True),
    "inpaint-brgm5-fill1": Case(lambda: Inpainting(brgm_mask(5, 32), fill=1.0), (2, 3, 32, 32), (2, 3, 32, 31),
                                True, True, linear=False),
    "inpaint-soft": Case(lambda: Inpainting(_soft_mask(16)), (2, 1, 16, 16), (2, 1, 8, 8), True, True),
    "inpaint-batch": Case(lambda: Inpainting(torch.stack([center_mask(16), random_pixels_mask(16, seed=1)])[:, None]),
                          (4, 3, 16, 16), (3, 3, 16, 16), True, True),
    "denoise": Case(lambda: Denoising(0.1), (2, 3, 16, 16), None, True, True),
    "color": Case(lambda: Colorization(), (2, 3, 16, 16), (2, 1, 16, 16), True, True),
    "sr4-then-inpaint": Case(lambda: Inpainting(center_mask(8)) @ SuperResolution(4), (2, 3, 32, 32),
                             (2, 3, 16, 16), True, True),
    "color-then-sr2": Case(lambda: SuperResolution(2) @ Colorization(), (1, 3, 16, 16), (1, 3, 16, 15), True, True),
}
ids = list(CASES)


def _x(shape, seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _with_sigma(op: Physics, sigma: float) -> Physics:
    """The same operator with noise ``sigma`` (on the last member of a composition)."""
    cfg = op.config()
    target = cfg["ops"][-1] if cfg["name"] == "composed" else cfg
    target["sigma"] = sigma
    return physics_from_config(cfg)


@pytest.fixture(params=ids)
def case(request) -> Case:
    return CASES[request.param]


# ---------------------------------------------------------------------------------------------- invariants


def test_shapes(case):
    op = case.make()
    x = _x(case.shape)
    y = op.A(x)
    assert tuple(y.shape) == op.out_shape(case.shape)
    assert op(x).shape == y.shape
    assert op.A_dagger(y).shape == x.shape
    assert y.dtype == x.dtype == op.A_dagger(y).dtype


def test_noiseless_range(case):
    op = _with_sigma(case.make(), 0.0)
    for x in (_x(case.shape), (_x(case.shape, 1) > 0.5).float(), torch.zeros(case.shape), torch.ones(case.shape)):
        y = op.A(x)
        if case.keeps_range:
            assert y.min() >= 0 and y.max() <= 1
        else:  # bicubic: negative lobes may overshoot a little, never wildly
            assert y.min() >= -0.5 and y.max() <= 1.5
        back = op.A_dagger(y)
        if case.keeps_range:
            assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6
    const = torch.full(case.shape, 0.3)
    if case.linear and "inpaint" not in str(case.make().config()):
        assert torch.allclose(op.A(const), torch.full_like(op.A(const), 0.3), atol=1e-6)  # constants kept


def test_seeded_noise(case):
    op = _with_sigma(case.make(), 0.05)
    x = _x(case.shape)
    torch.manual_seed(123)
    a = op(x, seed=7)
    torch.manual_seed(999)  # the seeded draw ignores the global RNG
    b = op(x, seed=7)
    c = op(x, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, op.A(x))
    assert torch.equal(_with_sigma(op, 0.0)(x, seed=7), op.A(x))


def test_pseudo_inverse(case):
    op = case.make()
    y = op.A(_x(case.shape))
    ayy = op.A(op.A_dagger(y))
    if case.exact_pinv:
        torch.testing.assert_close(ayy, y, atol=1e-5, rtol=0)
    else:  # bicubic: the pseudo-inverse is only an estimate, but close in the observed domain
        assert (ayy - y).abs().mean() < 0.2


def test_config_round_trip(case):
    op = _with_sigma(case.make(), 0.02)
    cfg = json.loads(json.dumps(op.config()))
    again = physics_from_config(cfg)
    assert type(again) is type(op)
    assert again.config() == op.config()
    x = _x(case.shape)
    assert torch.equal(again(x, seed=3), op(x, seed=3))
    assert torch.equal(again.A_dagger(op.A(x)), op.A_dagger(op.A(x)))


def test_nan_and_inf_rejected(case):
    op = case.make()
    x = _x(case.shape)
    x[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        op.A(x)
    with pytest.raises(ValueError, match="NaN"):
        op(x, seed=0)
    x[0, 0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="inf"):
        op.A(x)
    y = op.A(_x(case.shape))
    y[..., 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        op.A_dagger(y)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.bad_shape is not None])
def test_bad_size_rejected(name):
    case = CASES[name]
    op = case.make()
    with pytest.raises(ValueError, match="expected"):
        op.A(_x(case.bad_shape))
    with pytest.raises(ValueError, match="expected"):
        op.out_shape(case.bad_shape)


def test_bad_tensor_rejected(case):
    op = case.make()
    with pytest.raises(ValueError, match="4 dims"):
        op.A(_x(case.shape)[0])
    with pytest.raises(ValueError, match="floating"):
        op.A((_x(case.shape) * 255).to(torch.uint8))


def test_differentiable_and_linear(case):
    op = case.make()
    x = _x(case.shape).requires_grad_(True)
    op.A(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    if case.linear:
        a, b = _x(case.shape, 1), _x(case.shape, 2)
        torch.testing.assert_close(op.A(0.3 * a + 0.7 * b), 0.3 * op.A(a) + 0.7 * op.A(b), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- super-resolution


@pytest.mark.parametrize("f", [2, 4, 8, 16])
def test_box_is_block_mean(f):
    x = _x((2, 3, 32, 32)).double()
    ref = x.reshape(2, 3, 32 // f, f, 32 // f, f).mean(dim=(3, 5))
    torch.testing.assert_close(SuperResolution(f, "box").A(x), ref, atol=1e-12, rtol=0)
    up = SuperResolution(f).A_dagger(ref)
    assert torch.equal(up, ref.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3))


@pytest.mark.parametrize("f,size", [(2, 32), (3, 48), (4, 64), (8, 64), (32, 64)])
def test_bicubic_matches_interpolate(f, size):
    x = _x((2, 3, size, size))
    ref = F.interpolate(x, scale_factor=1 / f, mode="bicubic", align_corners=False, recompute_scale_factor=True)
    assert torch.equal(SuperResolution(f, "bicubic_noaa").A(x), ref)
    ref_aa = F.interpolate(x, scale_factor=1 / f, mode="bicubic", align_corners=False,
                           recompute_scale_factor=True, antialias=True)
    assert torch.equal(SuperResolution(f, "bicubic_aa").A(x), ref_aa)


def test_superres_large_factor_and_out_shape():
    op = SuperResolution(64)
    assert op.out_shape((1, 3, 128, 64)) == (1, 3, 2, 1)
    assert op.A(_x((1, 3, 128, 64))).shape == (1, 3, 2, 1)


@pytest.mark.parametrize("factor", [1, 65, 0, -2, 2.5, True, "4"])
def test_superres_bad_factor(factor):
    with pytest.raises(ValueError, match="factor"):
        SuperResolution(factor)


def test_superres_factor_must_divide():
    with pytest.raises(ValueError, match="not divisible.*expected H and W multiples of 8, got 36x32"):
        SuperResolution(8).A(_x((1, 3, 36, 32)))


def test_superres_bad_kernel_and_sigma():
    with pytest.raises(ValueError, match="kernel"):
        SuperResolution(4, "lanczos")
    with pytest.raises(ValueError, match="sigma"):
        SuperResolution(4, sigma=-0.1)
    with pytest.raises(ValueError, match="sigma"):
        Denoising(float("nan"))


# ---------------------------------------------------------------------------------------------- denoising


def test_denoising_noise_statistics():
    op = Denoising(0.1)
    x = torch.full((1, 3, 128, 128), 0.5)
    assert torch.equal(op.A(x), x) and torch.equal(op.A_dagger(x), x)
    noise = op(x, seed=0) - x
    assert abs(noise.mean().item()) < 0.003
    assert abs(noise.std().item() - 0.1) < 0.003


# ---------------------------------------------------------------------------------------------- colorization


def test_luma_coefficients():
    assert LUMA_601 == (0.299, 0.587, 0.114)
    eye = torch.eye(3).view(3, 3, 1, 1)  # pure red, green, blue images
    torch.testing.assert_close(Colorization().A(eye).flatten(), torch.tensor([0.299, 0.587, 0.114]))
    grey = torch.rand(2, 1, 8, 8)
    assert torch.equal(Colorization().A_dagger(grey), grey.expand(-1, 3, -1, -1))


def test_luma_matches_pil():
    rgb = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    pil = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.float32) / 255
    ours = Colorization().A(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()
    assert np.abs(ours - pil).max() <= 1 / 255 + 1e-6


def test_colorization_channel_errors():
    with pytest.raises(ValueError, match="expected 3 channels, got 1"):
        Colorization().A(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="expected 1 channel, got 3"):
        Colorization().A_dagger(torch.rand(1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------- in-painting


def test_inpainting_operator_and_pseudo_inverse():
    mask = center_mask(8, 0.5)  # hole rows/cols 2..5
    x = _x((2, 3, 8, 8))
    op = Inpainting(mask, fill=0.25)
    y = op.A(x)
    m = mask.float()
    torch.testing.assert_close(y, x * m + 0.25 * (1 - m))
    assert op.hole_fraction == 0.25
    back = op.A_dagger(y)
    torch.testing.assert_close(back[..., mask], x[..., mask])
    observed_mean = x[..., mask].mean(dim=-1)  # (N, C)
    torch.testing.assert_close(back[..., ~mask], observed_mean[..., None].expand(-1, -1, 16))
    # (1, 1, H, W) masks and float masks are the same operator
    assert torch.equal(Inpainting(m[None, None], fill=0.25).A(x), y)


def test_inpainting_mask_batch_tiles():
    masks = torch.stack([center_mask(8), brgm_mask(0, 8)])[:, None]  # (2, 1, 8, 8)
    op, x = Inpainting(masks), _x((2, 3, 8, 8))
    y = op.A(x)
    assert torch.equal(y[0], x[0] * center_mask(8)) and torch.equal(y[1], x[1] * brgm_mask(0, 8))
    assert torch.equal(op.A(x.repeat(3, 1, 1, 1)), y.repeat(3, 1, 1, 1))  # image i uses mask i % 2
    assert torch.equal(op.A_dagger(y.repeat(2, 1, 1, 1)), op.A_dagger(y).repeat(2, 1, 1, 1))


def test_inpainting_errors():
    with pytest.raises(ValueError, match="expected 8x8 \\(the mask\\), got 8x16"):
        Inpainting(center_mask(8)).A(torch.rand(1, 3, 8, 16))
    with pytest.raises(ValueError, match="mask must have shape"):
        Inpainting(torch.ones(2, 8, 8))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        Inpainting(torch.full((8, 8), 2.0))
    with pytest.raises(ValueError, match="fill"):
        Inpainting(center_mask(8), fill=float("nan"))


@pytest.mark.parametrize("size", [256, 1024])
@pytest.mark.parametrize("index", range(7))
def test_brgm_mask_hole_fractions(index, size):
    observed = brgm_mask(index, size)
    assert observed.shape == (size, size) and observed.dtype == torch.bool
    hole = 1 - observed.float().mean().item()
    if index == 2:  # eye squares: geometry not given, only plausible
        assert 0.04 <= hole <= 0.07
        rows = (~observed).any(dim=1).nonzero().flatten()
        assert rows.min() > 0.3 * size and rows.max() < 0.6 * size  # eye line, upper-middle of the face
    else:
        assert abs(hole - BRGM_HOLE_FRACTIONS[size][index]) <= 0.02


def test_brgm_mask_geometry():
    bar = ~brgm_mask(3, 1024)
    cols = bar.any(dim=0).nonzero().flatten()
    rows = bar.any(dim=1).nonzero().flatten()
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (515, 746, 185, 839)
    mouth = ~brgm_mask(5, 1024)
    cols, rows = mouth.any(dim=0).nonzero().flatten(), mouth.any(dim=1).nonzero().flatten()
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (286, 750, 616, 867)
    assert torch.equal(brgm_mask(0, 256), ~brgm_mask(1, 256))  # the two halves are complementary
    assert not brgm_mask(4, 64)[0, -1] and brgm_mask(4, 64)[-1, -1] and brgm_mask(4, 64)[0, 0]
    assert not brgm_mask(6, 64)[-1, 0] and brgm_mask(6, 64)[0, 0]
    assert brgm_mask(3, (128, 64)).shape == (128, 64)
    with pytest.raises(ValueError, match="0..6"):
        brgm_mask(7, 64)


def test_center_mask_256():
    hole = ~center_mask(256)
    rows, cols = hole.any(dim=1).nonzero().flatten(), hole.any(dim=0).nonzero().flatten()
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (96, 159, 96, 159)
    assert hole.sum() == 64 * 64


def test_random_masks():
    a, b = random_boxes_mask(128, seed=1), random_boxes_mask(128, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, random_boxes_mask(128, seed=2))
    for seed in range(10):
        hole = 1 - random_boxes_mask(128, seed=seed).float().mean().item()
        assert 0 < hole < 1
    one = ~random_boxes_mask(64, n=1, seed=3)  # a single box is a rectangle
    rows, cols = one.any(dim=1).nonzero().flatten(), one.any(dim=0).nonzero().flatten()
    assert one.sum() == len(rows) * len(cols) and len(rows) > 2 and len(cols) > 2
    px = random_pixels_mask(256, drop=0.8, seed=0)
    assert abs((1 - px.float().mean().item()) - 0.8) < 0.01
    assert torch.equal(px, random_pixels_mask(256, drop=0.8, seed=0))


def test_make_mask_specs(tmp_path):
    assert torch.equal(make_mask("center", 64), center_mask(64))
    assert torch.equal(make_mask("center:0.5", 64), center_mask(64, 0.5))
    assert torch.equal(make_mask("brgm-3", 64), brgm_mask(3, 64))
    assert torch.equal(make_mask("boxes", 64, seed=4), random_boxes_mask(64, seed=4))
    assert torch.equal(make_mask("boxes:3", 64, seed=4), random_boxes_mask(64, 3, seed=4))
    assert torch.equal(make_mask("pixels:0.8", 64, seed=4), random_pixels_mask(64, 0.8, seed=4))
    assert torch.equal(Inpainting.from_spec("brgm-2", 64, sigma=0.1).observed[0, 0], brgm_mask(2, 64))
    assert len(json.dumps(Inpainting.from_spec("brgm-3", 1024).config())) < 2000  # masks are stored compactly
    path = save_mask(brgm_mask(5, 64), tmp_path / "m.png")
    assert torch.equal(make_mask(str(path), 64), brgm_mask(5, 64))
    for bad in ("nonsense", "brgm-9", "pixels:x", "center:2", str(tmp_path / "missing.png")):
        with pytest.raises(ValueError):
            make_mask(bad, 64)


def test_mask_from_file_round_trip(tmp_path):
    mask = brgm_mask(2, 64) & random_pixels_mask(64, 0.1, seed=0)
    assert torch.equal(mask_from_file(save_mask(mask, tmp_path / "grey.png")), mask)
    hole = ~mask.numpy()
    # BRGM's 1024 masks are RGBA with opaque black holes
    rgba = np.full((64, 64, 4), 255, np.uint8)
    rgba[hole, :3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert torch.equal(mask_from_file(tmp_path / "rgba.png"), mask)
    # a transparent hole over a uniform colour
    rgba = np.full((64, 64, 4), 200, np.uint8)
    rgba[..., 3] = np.where(hole, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert torch.equal(mask_from_file(tmp_path / "alpha.png"), mask)
    # BRGM's rule: the hole is the minimum of the first channel, whatever its value
    grey = np.where(hole, 30, 220).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "rgb.png")
    assert torch.equal(mask_from_file(tmp_path / "rgb.png"), mask)


def test_mask_from_file_resize_and_errors(tmp_path):
    path = save_mask(center_mask(64), tmp_path / "c.png")
    assert torch.equal(mask_from_file(path, size=256), center_mask(256))  # nearest: rows 24..39 -> 96..159
    assert mask_from_file(path, size=(32, 16)).shape == (32, 16)
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "white.png")
    assert bool(mask_from_file(tmp_path / "white.png").all())  # uniform white: all observed
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "black.png")
    assert not bool(mask_from_file(tmp_path / "black.png").any())  # uniform black: all hole
    with pytest.raises(ValueError, match="not found"):
        mask_from_file(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read"):
        mask_from_file(tmp_path / "junk.png")


# ---------------------------------------------------------------------------------------------- composition


def test_composition_order_and_flattening():
    sr, inp = SuperResolution(4), Inpainting(center_mask(8))
    comp = inp @ sr
    assert isinstance(comp, Composed) and list(comp.ops) == [sr, inp]
    x = _x((2, 3, 32, 32))
    assert torch.equal(comp.A(x), inp.A(sr.A(x)))
    assert torch.equal(Composed([sr, inp]).A(x), comp.A(x))
    assert comp.out_shape(x.shape) == (2, 3, 8, 8)
    assert torch.equal(comp.A_dagger(comp.A(x)), sr.A_dagger(inp.A_dagger(comp.A(x))))
    three = Denoising(0.1) @ comp
    assert len(three.ops) == 3 and abs(three.sigma - 0.1) < 1e-12
    with pytest.raises(ValueError, match="expected 8x8"):  # inpainting on the high-resolution grid
        (Inpainting(center_mask(8)) @ SuperResolution(2)).A(x)
    with pytest.raises(TypeError):
        sr @ 3


def test_composed_noise_is_seeded_once():
    comp = Denoising(0.05) @ SuperResolution(2, sigma=0.05)
    x = _x((1, 3, 16, 16))
    assert torch.equal(comp(x, seed=1), comp(x, seed=1))
    assert not torch.equal(comp(x, seed=1), comp(x, seed=2))
    assert comp.sigma == pytest.approx(0.05 * 2 ** 0.5)


def test_unknown_config():
    with pytest.raises(ValueError, match="unknown physics"):
        physics_from_config({"name": "blur"})
    with pytest.raises(ValueError, match="name"):
        physics_from_config({"factor": 4})


def test_one_task_vocabulary_and_older_names_still_read():
    from genprior.restore import TASKS

    names = {SuperResolution(2).name, Inpainting(center_mask(16)).name, Denoising(0.1).name, Colorization().name}
    assert names == set(TASKS)  # the physics, the CLI and the result files speak one vocabulary
    for old, cls in (("inpainting", Inpainting), ("denoising", Denoising), ("colorization", Colorization)):
        cfg = {**{"inpainting": Inpainting(center_mask(16)), "denoising": Denoising(0.1),
                  "colorization": Colorization()}[old].config(), "name": old}  # as a result folder of 0.1 saved it
        assert isinstance(physics_from_config(cfg), cls)
