"""BIGPrior fusion: official net conformance, colorization AuC, training/testing runs, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from genprior.errors import GenpriorError
from genprior.io.images import read_image
from genprior.methods.fusion import FusionNet, read_official_state_dict
from genprior.methods.fusion_data import FusionTriples, index_folder
from genprior.methods.fusion_nets import BoundedPhi, DnCNNPhi
from genprior.methods.fusion_test import test_fusion
from genprior.methods.fusion_train import experiment_dir, latest_epoch, train_fusion
from genprior.metrics import colorization_auc, rgb_to_lab


@pytest.fixture(scope="module")
def col(shared):
    root = shared / "data"
    paths = {"input": root / "bigprior-col-bedroom" / "input", "gan": root / "bigprior-col-bedroom" / "mGANoutput",
             "ours": root / "bigprior-col-bedroom" / "OURoutput", "truth": root / "lsun256" / "bedroom",
             "net": root / "bigprior-nets" / "col_bedroom_1"}
    for p in paths.values():
        if not p.is_dir():
            pytest.fail(f"missing shared data folder {p}")
    return paths


@pytest.fixture(scope="module")
def official(col):
    return FusionNet.load(col["net"])


def _stored(col, name, images):
    return np.load(col["net"] / f"{name}.npy")[[i - 250 for i in images]]


def _as_uint8(x: torch.Tensor) -> torch.Tensor:
    """torchvision save_image's quantisation: clamp to [0, 1], then x·255 + 0.5 truncated."""
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def _read_uint8(path) -> torch.Tensor:
    return (read_image(path, 3) * 255).round().to(torch.uint8)


def compare_to_reference(model: FusionNet, dataset: FusionTriples, reference) -> dict:
    """Pixel agreement of ``model``'s outputs and φ maps with stored 8-bit ones (``<stem>.*``, ``<stem>_phi.*``).

    The float outputs are quantised as torchvision's ``save_image`` (the official test's writer). Returns, for
    "output" and "phi", the fraction of identical 8-bit values (``identical``), the largest difference in grey
    levels (``max_diff``) and the number of values over all images, and the same per image.
    """
    ref = index_folder(reference, "reference")
    result: dict = {"per_image": {}}
    totals = {k: [0, 0, 0] for k in ("output", "phi")}  # identical, count, max
    for i in range(len(dataset)):
        item = dataset[i]
        stem = item["stem"]
        mask = None if item["mask"] is None else item["mask"][None]
        x, phi = model(item["y"][None], item["g"][None], mask, clamp=False)
        row = {}
        for what, ours, key in (("output", x, stem), ("phi", phi, f"{stem}_phi")):
            theirs = _read_uint8(ref[key])
            assert theirs.shape == ours.shape, f"{ref[key]}: shape {tuple(theirs.shape)} vs {tuple(ours.shape)}"
            diff = (_as_uint8(ours).int() - theirs.int()).abs()
            same, mx = int((diff == 0).sum()), int(diff.max())
            t = totals[what]
            t[0], t[1], t[2] = t[0] + same, t[1] + diff.numel(), max(t[2], mx)
            row[what] = {"identical": same / diff.numel(), "max_diff": mx}
        result["per_image"][stem] = row
    for what, (same, count, mx) in totals.items():
        result[what] = {"identical": same / max(count, 1), "max_diff": mx, "values": count}
    return result


# --------------------------------------------------------------------------- the official net

def test_official_state_dict_loads_strictly(col):
    sd = read_official_state_dict(col["net"] / "net_24.pth")
    assert len(sd) == 92 and all(k.startswith("dncnn.") for k in sd)
    net = DnCNNPhi(in_channels=1)
    assert set(net.state_dict()) == set(sd)
    net.load_state_dict(sd, strict=True)
    assert sum(p.numel() for p in net.parameters()) == 557_184
    assert sum(p.numel() for p in DnCNNPhi(in_channels=3).parameters()) == 558_336
    model = FusionNet.load(col["net"] / "net_24.pth")
    assert (model.task, model.in_channels, model.kind) == ("colorize", 1, "dncnn")


def test_official_net_reproduces_stored_outputs_and_metrics(col, official):
    """Three 128x128 windows (top-left, bottom-right, centre) of three test images, to stay fast.

    The DnCNN-17 sees 17 pixels around each output pixel, so outside a 17-pixel band along the window's inner
    edges the outputs equal those of the full image; the image's own borders are inside the windows.
    """
    R, S, B = 17, 128, 256
    windows = {250: (0, 0), 274: (B - S, B - S), 299: ((B - S) // 2, (B - S) // 2)}
    for i, (top, left) in windows.items():
        def win(t):
            return t[..., top:top + S, left:left + S]
        y = win(read_image(col["input"] / f"{i}.webp", 1))
        g = win(read_image(col["gan"] / f"{i}.webp", 3))
        x, phi = official(y, g, clamp=False)
        assert x.shape == phi.shape == (1, 3, S, S)
        valid = torch.zeros(S, S, dtype=torch.bool)
        valid[R if top else 0:S - R if top + S < B else S, R if left else 0:S - R if left + S < B else S] = True
        for ours, name in ((x, f"{i}.webp"), (phi, f"{i}_phi.webp")):
            ref = win(_read_uint8(col["ours"] / name))
            diff = (_as_uint8(ours).int() - ref.int()).abs()[..., valid]
            assert diff.max() <= 1  # float rounding at the .5 boundary only
            assert (diff == 0).double().mean() > 0.9999
        assert torch.equal(official(y, g)[0], x.clamp(0, 1))  # the public output is the clamped float


def test_official_net_float_outputs_give_stored_metrics(col, official):
    """The stored per-image MSE, mean φ and AuC were computed on the unclamped float outputs: full image 255."""
    i = 255
    y, g = read_image(col["input"] / f"{i}.webp", 1), read_image(col["gan"] / f"{i}.webp", 3)
    gt = read_image(col["truth"] / f"{i:04d}.webp", 3)
    x, phi = official(y, g, clamp=False)
    mse = (x.double() - gt.double()).pow(2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(mse, _stored(col, "MSE", [i]), rtol=1e-5)
    np.testing.assert_allclose(phi.double().mean().item(), _stored(col, "Mphi", [i]), atol=1e-6)
    # measured over all 50 images: |ΔAuC| <= 0.0015 (float32 rounding moves a few pixels across a threshold)
    np.testing.assert_allclose(colorization_auc(x, gt).numpy(), _stored(col, "AUC", [i]), atol=2e-3)


def test_compare_to_reference_on_one_full_image(col, official):
    ds = FusionTriples(col["input"], col["gan"], col["truth"], task="colorize", stems=[251])
    res = compare_to_reference(official, ds, col["ours"])
    for what in ("output", "phi"):
        assert res[what]["values"] == 3 * 256 * 256
        assert res[what]["identical"] > 0.9999 and res[what]["max_diff"] <= 1
    assert set(res["per_image"]) == {"251"}


# --------------------------------------------------------------------------- AuC

def test_rgb_to_lab_matches_skimage():
    skcolor = pytest.importorskip("skimage.color")
    x = torch.rand(2, 3, 17, 9, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1  # includes out-of-range
    ref = np.stack([skcolor.rgb2lab(t.permute(1, 2, 0).double().numpy()).transpose(2, 0, 1) for t in x])
    np.testing.assert_allclose(rgb_to_lab(x).numpy(), ref, atol=1e-9)


def test_auc_matches_a_direct_skimage_computation():
    skcolor = pytest.importorskip("skimage.color")
    gen = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 3, 20, 20, generator=gen)
    x = (gt + 0.3 * torch.randn(2, 3, 20, 20, generator=gen)).clamp(0, 1)
    ref = []
    for a, b in zip(x, gt):
        la, lb = (skcolor.rgb2lab(t.permute(1, 2, 0).double().numpy()) for t in (a, b))
        de = np.sqrt(((la[..., 1:] - lb[..., 1:]) ** 2).sum(-1))
        ref.append(np.mean([(de <= t).mean() for t in range(150)]) * 100)
    np.testing.assert_allclose(colorization_auc(x, gt).numpy(), ref, atol=1e-9)
    assert colorization_auc(gt, gt).tolist() == [100.0, 100.0]


def test_auc_and_mse_of_stored_images_match_stored_metrics(col):
    images = list(range(250, 256))
    gt = torch.cat([read_image(col["truth"] / f"{i:04d}.webp", 3) for i in images])
    gan = torch.cat([read_image(col["gan"] / f"{i}.webp", 3) for i in images])
    ours = torch.cat([read_image(col["ours"] / f"{i}.webp", 3) for i in images])
    # The GAN estimates were stored as the same 8-bit images the official test read: near-exact.
    np.testing.assert_allclose(colorization_auc(gan, gt).numpy(), _stored(col, "AUC_GAN", images), atol=1e-4)
    mse_gan = (gan.double() - gt.double()).pow(2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(mse_gan, _stored(col, "MSE_GAN", images), rtol=1e-6)
    # The official outputs were scored as unclamped floats but stored as 8-bit PNGs: 8-bit rounding and
    # clamping differences (measured over all 50: |ΔAuC| <= 0.027, |ΔMSE| <= 1.7e-5).
    np.testing.assert_allclose(colorization_auc(ours, gt).numpy(), _stored(col, "AUC", images), atol=0.05)
    mse = (ours.double() - gt.double()).pow(2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(mse, _stored(col, "MSE", images), atol=5e-5)


# --------------------------------------------------------------------------- training and testing

@pytest.fixture()
def one_thread():
    """Training runs use one thread (the machines running the tests are shared); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def tiny(col):
    return FusionTriples(col["input"], col["gan"], col["truth"], task="colorize", stems=range(250, 254), crop=48)


def test_dataset_matches_stems_across_naming(tiny):
    assert len(tiny) == 4 and tiny.stems == ["250", "251", "252", "253"]
    item = tiny[0]
    assert item["y"].shape == (1, 48, 48) and item["g"].shape == item["x"].shape == (3, 48, 48)
    assert item["mask"] is None and item["stem"] == "250"


@pytest.mark.parametrize("net,options,augment", [("dncnn", {}, False), ("bounded", {}, True)])
def test_train_resume_and_new_ids(col, tiny, tmp_path, net, options, augment, one_thread):
    if augment:  # random 64x64 crops and flips: resuming must restore the RNG too
        tiny = FusionTriples(col["input"], col["gan"], col["truth"], task="colorize", stems=range(250, 254),
                             crop=64, augment=True)
    kw = dict(net=net, net_options=options, batch=2, seed=3, progress=False, name="col")
    run = train_fusion(tiny, tmp_path, epochs=1, **kw)
    assert run.name == "col_1" and latest_epoch(run) == 0
    assert (run / "checkpoints" / "net_0.safetensors").is_file()
    args = json.loads((run / "args.json").read_text())
    assert args["net"] == net and args["task"] == "colorize" and args["lr"] == 0.01
    hist = json.loads((run / "history.json").read_text())
    assert hist["epoch"] == [0] and all(np.isfinite(hist[k][0]) for k in ("loss", "mse", "mean_phi", "psnr"))

    again = train_fusion(tiny, tmp_path, epochs=2, **kw)  # continues the unfinished run
    assert again == run and latest_epoch(run) == 1
    hist = json.loads((run / "history.json").read_text())
    assert hist["epoch"] == [0, 1]

    fresh = train_fusion(tiny, tmp_path, epochs=2, resume=False, **kw)
    assert fresh.name == "col_2"
    assert json.loads((fresh / "history.json").read_text())["loss"] == pytest.approx(hist["loss"], rel=1e-5)
    # resuming reproduces an uninterrupted run
    a = FusionNet.load(run).net.state_dict()
    b = FusionNet.load(fresh).net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)

    done = train_fusion(tiny, tmp_path, epochs=1, **kw)  # the latest run is complete: a new id
    assert done.name == "col_3"

    model = FusionNet.load(run)
    assert (model.kind, model.task, model.in_channels) == (net, "colorize", 1)
    res = test_fusion(model, tiny, tmp_path / "test", progress=False)
    assert set(res["per_image"]) == set(tiny.stems)
    for s in tiny.stems:
        for f in (f"{s}.png", f"{s}_phi.png", f"{s}.npy", f"{s}_phi.npy"):
            assert (tmp_path / "test" / f).is_file()
    arr = np.load(tmp_path / "test" / "250_phi.npy")
    assert arr.shape == (3, tiny.crop, tiny.crop) and arr.dtype == np.float32
    if net == "bounded":
        assert res["mean"]["phi_outside"] == 0.0
    for k in ("mse", "psnr", "ssim", "auc", "auc_gan", "mean_phi"):
        assert np.isfinite(res["mean"][k])
    with pytest.raises(FileExistsError):
        test_fusion(model, tiny, tmp_path / "test", progress=False)


def test_run_ids_do_not_collide_on_prefixes(tmp_path):
    (tmp_path / "col_bedroom_7").mkdir()
    (tmp_path / "col_x").mkdir()
    assert experiment_dir(tmp_path, "col").name == "col_1"
    assert experiment_dir(tmp_path, "col").name == "col_2"
    assert experiment_dir(tmp_path, "col_bedroom").name == "col_bedroom_8"


def test_bounded_phi_sees_g_and_mask():
    net = BoundedPhi(in_channels=3, layers=4, features=8, use_mask=True)
    y, g, m = torch.rand(2, 3, 16, 16) - 0.5, torch.rand(2, 3, 16, 16) - 0.5, torch.ones(2, 1, 16, 16)
    phi = net(y, g, m)
    assert phi.shape == (2, 3, 16, 16) and ((phi >= 0) & (phi <= 1)).all()
    with pytest.raises(ValueError, match="mask"):
        net(y, g, None)
    ablation = BoundedPhi(in_channels=1, layers=3, features=8, use_g=False)  # sees only y, as the official net
    assert ablation(y[:, :1], None).shape == (2, 3, 16, 16)


def test_bounded_phi_takes_the_holes_from_the_prior():
    torch.manual_seed(0)
    net = BoundedPhi(in_channels=3, layers=3, features=8, use_mask=True)
    torch.nn.init.normal_(net.body[-1].weight, std=1.0)  # a net that already learned something
    y, g = torch.rand(1, 3, 16, 16) - 0.5, torch.rand(1, 3, 16, 16) - 0.5
    m = torch.zeros(1, 1, 16, 16)
    m[..., 4:12, 4:12] = 1
    phi = net(y, g, m)
    assert torch.equal(phi[..., 4:12, 4:12], torch.ones(1, 3, 8, 8))  # holes: all prior, exactly
    outside = phi[..., :4, :]
    assert outside.min() < 0.9 and outside.std() > 0.01  # elsewhere the net decides
    fused = FusionNet(net, "inpaint")(y + 0.5, g + 0.5, m)[0]
    assert torch.allclose(fused[..., 4:12, 4:12], (g + 0.5)[..., 4:12, 4:12].clamp(0, 1), atol=1e-6)


# --------------------------------------------------------------------------- bad input

def test_mismatched_triples_name_the_missing_files(tmp_path, col):
    for d in ("obs", "gan", "gt"):
        (tmp_path / d).mkdir()
    for i in (0, 1, 2):
        shutil.copy(col["input"] / f"{i}.webp", tmp_path / "obs" / f"{i}.webp")
        shutil.copy(col["truth"] / f"{i:04d}.webp", tmp_path / "gt" / f"{i:04d}.webp")
    for i in (0, 2, 5):
        shutil.copy(col["gan"] / f"{i}.webp", tmp_path / "gan" / f"{i}.webp")
    with pytest.raises(GenpriorError, match=r"GAN estimate file\(s\) missing .* image\(s\) 1") as err:
        FusionTriples(tmp_path / "obs", tmp_path / "gan", tmp_path / "gt", task="colorize")
    assert "without an observation" in str(err.value) and "5" in str(err.value)
    with pytest.raises(GenpriorError, match=r"truth file\(s\) missing .* 7"):
        FusionTriples(tmp_path / "obs", tmp_path / "gan", tmp_path / "gt", task="colorize", stems=[0, 7])
    with pytest.raises(GenpriorError, match="does not exist"):
        FusionTriples(tmp_path / "obs", tmp_path / "nope", task="colorize")
    ds = FusionTriples(tmp_path / "obs", tmp_path / "gan", tmp_path / "gt", task="colorize", stems=[0, 2])
    assert ds.stems == ["0", "2"]


def test_wrong_task_or_channels_are_clear_errors(official, tiny, tmp_path):
    y3, g = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with pytest.raises(GenpriorError, match=r"'colorize' with 1-channel .* 3 channel"):
        official(y3, g)
    with pytest.raises(GenpriorError, match="trained for 'colorize' .* for 'inpaint'"):
        official(torch.rand(1, 1, 32, 32), g, task="inpaint")
    with pytest.raises(GenpriorError, match="GAN estimate"):
        official(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    rgb = FusionNet(DnCNNPhi(in_channels=3, layers=3, features=8), "inpaint")
    with pytest.raises(GenpriorError, match="trained for 'inpaint' .* for 'colorize'"):
        test_fusion(rgb, tiny, tmp_path / "t", progress=False)
    with pytest.raises(GenpriorError, match="needs 1-channel input"):
        FusionNet(DnCNNPhi(in_channels=3, layers=3, features=8), "colorize")
    with pytest.raises(GenpriorError, match="is a 'colorize' fusion net, not a 'denoise' one"):
        FusionNet.load(official.source, task="denoise")


def test_mask_files_are_white_where_observed(tmp_path):
    from genprior.io.images import save_image

    for sub in ("obs", "gan", "gt", "mask"):
        (tmp_path / sub).mkdir()
    img = torch.rand(3, 16, 16)
    observed = torch.ones(1, 16, 16)
    observed[:, 4:12, 4:12] = 0  # black hole in a white mask file, as `genprior restore --mask FILE`
    for sub in ("obs", "gan", "gt"):
        save_image(img, tmp_path / sub / "a.png")
    save_image(observed, tmp_path / "mask" / "a.png")
    item = FusionTriples(tmp_path / "obs", tmp_path / "gan", tmp_path / "gt", task="inpaint",
                         masks=tmp_path / "mask")[0]
    assert torch.equal(item["mask"], 1 - observed)  # in memory: 1 on the hole (BIGPrior's M)
