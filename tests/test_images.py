"""Image reading at full bit depth, the conversions it states, and 16-bit writing (files made here)."""

from __future__ import annotations

import sys

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image

from genprior.errors import GenpriorError
from genprior.io.images import read_image, read_image_info, save_image, to_uint16


def ramp16(h: int = 16, w: int = 24, samples: int = 3) -> np.ndarray:
    """uint16 (H, W, S) using the whole 0..65535 range, including values above 255 in every sample."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, size=(h, w, samples), dtype=np.uint16)
    a[0, 0] = 0
    a[0, 1] = 65535
    return a


def as_chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32) / 65535.0).permute(2, 0, 1)[None]


def test_16bit_grey_png_is_read_at_full_depth_not_clipped(tmp_path):
    a = ramp16(samples=1)[..., 0]
    Image.fromarray(a).save(tmp_path / "g16.png")
    info = read_image_info(tmp_path / "g16.png")
    assert info.bit_depth == 16 and info.conversions == ()
    assert torch.equal(info.image, torch.from_numpy(a.astype(np.float32) / 65535.0)[None, None])
    assert 0.3 < float(info.image.mean()) < 0.7  # the old reader clipped it to (nearly) all white


@pytest.mark.parametrize("kind", ["png", "tiff", "tiff-planar"])
def test_16bit_colour_png_and_tiff_are_read_exactly(tmp_path, kind):
    a = ramp16()
    path = tmp_path / ("c.png" if kind == "png" else "c.tif")
    if kind == "png":
        png.from_array(a.reshape(a.shape[0], -1), "RGB;16").save(str(path))
    elif kind == "tiff":
        tifffile.imwrite(path, a, photometric="rgb")
    else:
        tifffile.imwrite(path, np.moveaxis(a, -1, 0), photometric="rgb", planarconfig="separate")
    info = read_image_info(path)
    assert (info.bit_depth, info.mode, info.conversions) == (16, "RGB", ())
    assert torch.equal(info.image, as_chw(a))
    grey = read_image_info(path, channels=1)
    assert grey.conversions == ("converted RGB to grey (ITU-R 601 luma)",)
    luma = (as_chw(a) * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    torch.testing.assert_close(grey.image, luma, atol=1e-6, rtol=0)


def test_16bit_rgba_states_that_alpha_was_dropped(tmp_path):
    a = ramp16(samples=4)
    png.from_array(a.reshape(a.shape[0], -1), "RGBA;16").save(str(tmp_path / "a.png"))
    info = read_image_info(tmp_path / "a.png", channels=3)
    assert info.conversions == ("converted RGBA to RGB (alpha dropped)",)
    assert torch.equal(info.image, as_chw(a[..., :3]))


def test_float32_tiff_is_taken_as_stored_and_out_of_range_refused(tmp_path):
    f = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    tifffile.imwrite(tmp_path / "f.tif", f)
    info = read_image_info(tmp_path / "f.tif")
    assert info.bit_depth == 32 and torch.equal(info.image[0, 0], torch.from_numpy(f))
    tifffile.imwrite(tmp_path / "hot.tif", f * 4 - 1)
    with pytest.raises(GenpriorError, match=r"hot.tif: float samples span \[-1, 3\] .*outside \[0, 1\]; rescale"):
        read_image(tmp_path / "hot.tif")


def test_signed_integer_tiff_is_refused_with_one_line(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.arange(-8, 8, dtype=np.int16).reshape(4, 4))
    with pytest.raises(GenpriorError, match="s.tif: 16-bit signed integer samples are not supported"):
        read_image(tmp_path / "s.tif")


def test_16bit_colour_png_without_pypng_is_refused_not_narrowed(tmp_path, monkeypatch):
    a = ramp16()
    png.from_array(a.reshape(a.shape[0], -1), "RGB;16").save(str(tmp_path / "c.png"))
    monkeypatch.setitem(sys.modules, "png", None)  # import png now raises ImportError
    with pytest.raises(GenpriorError, match=r"c.png: a 16-bit colour PNG needs pypng .*genprior\[scientific\]"):
        read_image(tmp_path / "c.png")


def test_8bit_reading_is_pillows_conversion_exactly(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    grey = read_image_info(tmp_path / "c.png", channels=1)
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255.0
    assert grey.bit_depth == 8 and torch.equal(grey.image[0, 0], torch.from_numpy(expected))
    assert torch.equal(read_image(tmp_path / "c.png"), torch.from_numpy(rgb / np.float32(255)).permute(2, 0, 1)[None])


@pytest.mark.parametrize("mode, channels, expected", [
    ("RGBA", 3, ("converted RGBA to RGB (alpha dropped)",)),
    ("RGBA", None, ("converted RGBA to RGB (alpha dropped)",)),
    ("L", 3, ("grey image repeated to 3 channels",)),
    ("LA", 1, ("converted LA to grey (alpha dropped)",)),
    ("RGB", 1, ("converted RGB to grey (ITU-R 601 luma)",)),
    ("RGB", 3, ()),
    ("L", None, ()),
])
def test_conversions_are_stated(tmp_path, mode, channels, expected):
    Image.new(mode, (4, 4)).save(tmp_path / "x.png")
    info = read_image_info(tmp_path / "x.png", channels)
    assert info.conversions == expected
    assert info.image.shape[1] == (channels or (1 if mode in ("L", "LA") else 3))


@pytest.mark.parametrize("name, c", [("g.png", 1), ("c.png", 3), ("c.tif", 3), ("g.tif", 1)])
def test_save_16bit_round_trips_exactly(tmp_path, name, c):
    x = torch.rand(c, 12, 10, generator=torch.Generator().manual_seed(3))
    save_image(x, tmp_path / name, bits=16)
    info = read_image_info(tmp_path / name)
    assert info.bit_depth == 16
    q = torch.from_numpy(to_uint16(x).astype(np.float32) / 65535.0)
    assert torch.equal(info.image[0], q[None] if c == 1 else q.permute(2, 0, 1))
    assert (info.image[0] - x).abs().max() <= 0.5 / 65535 + 1e-7


def test_save_16bit_refuses_8bit_formats_and_read_refuses_garbage(tmp_path):
    with pytest.raises(GenpriorError, match=r"x.jpg: JPEG holds 8 bits per sample; write .png or .tif for 16 bits"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "x.jpg", bits=16)
    assert not (tmp_path / "x.jpg").exists()
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(GenpriorError, match="bad.png: not a readable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(GenpriorError, match="channels must be 1 or 3, not 2"):
        read_image(tmp_path / "bad.png", channels=2)
