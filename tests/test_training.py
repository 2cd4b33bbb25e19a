"""StyleGAN2 training: tiny runs on a few real faces, exact resume, data errors, the Fréchet distance."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from genprior import load_generator
from genprior.training import DatasetError, StyleGAN2Discriminator, TrainingConfig, TrainingError, load_dataset, train
from genprior.training.augment import diff_augment
from genprior.training.data import load_mnist_idx
from genprior.training.loop import load_training_checkpoint
from genprior.errors import GenpriorError
from genprior.metrics.generative import frechet_distance, precision_recall, vgg_features

TINY = dict(resolution=16, batch=4, g_channel_base=128, g_channel_max=16, d_channel_base=128, d_channel_max=16,
            z_dim=16, w_dim=16, mapping_layers=2, progress=False, mirror=True, seed=3)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def faces(shared, tmp_path_factory):
    """A folder of 8 real faces (64x64 JPEG) from the shared UTKFace subset."""
    src = shared / "data" / "faces-utk64"
    out = tmp_path_factory.mktemp("faces8")
    for f in sorted(src.glob("*.jpg"))[:8]:
        shutil.copy(f, out / f.name)
    return out


def _state(path):
    G = load_generator(path, device="cpu")
    return G, G.state_dict()


@pytest.mark.filterwarnings("ignore:.*not 16x16")
def test_tiny_run_resume_is_exact(faces, tmp_path):
    a = train(faces, tmp_path / "a", kimg=0.02, snapshot_kimg=0.012, **TINY)  # 5 steps, snapshot after 3
    assert a["step"] == 5 and [h[0] for h in a["history"]] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(g) and math.isfinite(d) for _, g, d in a["history"])
    names = {p.name for p in (tmp_path / "a").iterdir()}
    for expected in ("checkpoint.json", "checkpoint-00000005.safetensors", "network-00000003.safetensors",
                     "network-00000005.safetensors", "network-latest.safetensors", "samples-00000003.png",
                     "samples-00000005.png", "reals.png", "log.txt", "stats.jsonl"):
        assert expected in names
    assert not any(n.endswith(".tmp") for n in names)
    state = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    assert state["step"] == 5 and state["cur_nimg"] == 20
    G, _ = _state(tmp_path / "a" / "network-latest.safetensors")
    assert (G.resolution, G.channels, G.z_dim) == (16, 3, 16)
    assert Image.open(tmp_path / "a" / "samples-00000005.png").size == (128, 128)

    b1 = train(faces, tmp_path / "b", kimg=0.012, snapshot_kimg=0.012, **TINY)  # stops after step 3
    assert b1["step"] == 3
    b2 = train(faces, tmp_path / "b", kimg=0.02, snapshot_kimg=0.012, **TINY)  # resumes: steps 4 and 5
    assert [h[0] for h in b2["history"]] == [4, 5]
    assert b2["history"] == a["history"][3:]  # the same losses as the uninterrupted run, bit for bit
    _, sd_a = _state(tmp_path / "a" / "network-latest.safetensors")
    _, sd_b = _state(tmp_path / "b" / "network-latest.safetensors")
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)


@pytest.mark.filterwarnings("ignore:.*not 16x16")
def test_resume_refuses_another_config_and_interrupt_saves(faces, tmp_path):
    train(faces, tmp_path, kimg=0.008, snapshot_kimg=1, **TINY)
    with pytest.raises(TrainingError, match="z_dim"):
        train(faces, tmp_path, kimg=0.016, snapshot_kimg=1, **{**TINY, "z_dim": 8})

    def interrupt(msg: str) -> None:
        if msg.startswith("kimg"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(faces, tmp_path, kimg=1, snapshot_kimg=1, **{**TINY, "progress": True}, progress_sec=0, log=interrupt)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["step"] == 3  # saved right after the interrupted step
    assert signal.getsignal(signal.SIGINT) is not None


def test_dataset_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path / "empty", resolution=16)
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("RGB", (16, 16)).save(bad / "ok.png")
    (bad / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        load_dataset(bad, resolution=16)
    for res in (48, 3, 0):
        with pytest.raises(DatasetError, match="power of two"):
            load_dataset(bad, resolution=res)
    with pytest.raises(DatasetError, match="power of two"):
        train(bad, tmp_path / "run", resolution=24, kimg=1)
    with pytest.raises(DatasetError, match="no such"):
        load_dataset(tmp_path / "missing", resolution=16)


def test_mixed_sizes_and_channels_are_converted_with_notice(tmp_path):
    d = tmp_path / "mixed"
    (d / "sub").mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(d / "a.webp", lossless=True)
    Image.new("L", (40, 20), 77).save(d / "sub" / "b.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 255)).save(d / "c.png")
    lines = []
    with pytest.warns(UserWarning, match="1 of 3 images are not 16x16"):
        x = load_dataset(d, resolution=16, channels=1, log=lines.append)
    assert x.shape == (3, 1, 16, 16) and x.dtype == torch.uint8
    assert "-> grey" in lines[0] and "2 converted" in lines[0]
    assert int(x[2].float().mean().round()) == 77  # sub/b.png, found recursively, cropped and resized
    with pytest.warns(UserWarning, match="not 16x16"):
        assert load_dataset(d / "sub", resolution=16, log=None).shape[1] == 1  # all grey: grey by default
    assert load_dataset(d, resolution=16, log=None, max_images=1).shape[1] == 3  # colour: RGB by default


def test_mnist_idx_is_padded(shared):
    x = load_mnist_idx(shared / "data" / "digits" / "t10k-images-idx3-ubyte.gz", max_images=10, log=None)
    assert x.shape == (10, 1, 32, 32) and x.dtype == torch.uint8
    assert x[:, :, :2].sum() == 0 and x[:, :, :, -2:].sum() == 0 and x.max() > 200


def test_discriminator_and_augment_shapes():
    for ch in (1, 3):
        D = StyleGAN2Discriminator(img_resolution=16, img_channels=ch, channel_base=128, channel_max=16)
        x = torch.randn(8, ch, 16, 16, requires_grad=True)
        y = D(diff_augment(x))
        assert y.shape == (8, 1)
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Discriminator(img_resolution=24, img_channels=3)


def _direct_fd(a: np.ndarray, b: np.ndarray) -> float:
    """FID's formula with tr sqrt(S_a S_b) from the eigenvalues of the (non-symmetric) product."""
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ev = np.linalg.eigvals(sa @ sb)
    return float(((ma - mb) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(np.clip(ev.real, 0, None)).sum())


def test_frechet_distance_matches_direct_computation():
    rng = np.random.RandomState(0)
    a = rng.randn(200, 6)
    b = rng.randn(150, 6) @ rng.randn(6, 6) * 0.7 + 0.5
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(_direct_fd(a, b), rel=1e-6)
    assert frechet_distance(a, a + 1) == pytest.approx(6, rel=1e-6)  # a pure shift: |mu| squared
    # singular covariances (fewer samples than dimensions) stay finite and symmetric
    c, d = rng.randn(5, 20), rng.randn(7, 20)
    assert math.isfinite(frechet_distance(c, d))
    assert frechet_distance(c, d) == pytest.approx(frechet_distance(d, c), rel=1e-6)


def test_precision_recall_by_hand():
    real = np.arange(5.0)[:, None]                 # k = 1: every real ball has radius 1, covering [-1, 5]
    fake = np.array([[0.5], [0.7], [10.0], [10.1]])  # radii 0.2, 0.2, 0.1, 0.1: no integer inside
    assert precision_recall(real, fake, k=1) == (0.5, 0.0)
    assert precision_recall(fake, real, k=1) == (0.0, 0.5)  # the roles swap


def _brute_precision(real, fake, k):
    radius = [sorted(np.linalg.norm(real - r, axis=1))[k] for r in real]
    return np.mean([any(np.linalg.norm(f - r) <= rad for r, rad in zip(real, radius)) for f in fake])


def test_precision_recall_matches_brute_force_and_reacts_to_shift():
    rng = np.random.RandomState(1)
    real, fake = rng.randn(120, 5), rng.randn(90, 5) * 0.8 + 0.6
    p, r = precision_recall(real, fake, k=3)
    assert p == pytest.approx(_brute_precision(real, fake, 3))
    assert r == pytest.approx(_brute_precision(fake, real, 3))
    same_p, same_r = precision_recall(real[:60], real[60:], k=3)
    far_p, far_r = precision_recall(real, fake + 5, k=3)
    assert min(same_p, same_r) > 0.7 and max(far_p, far_r) < 0.05
    with pytest.raises(GenpriorError, match="more than k points"):
        precision_recall(real[:3], fake, k=3)
    with pytest.raises(GenpriorError, match="equal D"):
        precision_recall(real, fake[:, :4])


def test_vgg_fd_same_vs_different(faces):
    imgs = torch.from_numpy(np.stack([np.asarray(Image.open(f).resize((32, 32))) for f in sorted(faces.iterdir())]))
    imgs = imgs.permute(0, 3, 1, 2).contiguous()
    noise = torch.randint(0, 256, imgs.shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    fa, fn = vgg_features(imgs), vgg_features(noise)
    assert fa.shape == (8, 512)
    assert frechet_distance(fa, fa) == pytest.approx(0, abs=1e-3)
    assert frechet_distance(fa[:4], fa[4:]) < frechet_distance(fa, fn)
    grey = vgg_features(imgs[:, :1])
    assert grey.shape == (8, 512) and np.isfinite(grey).all()


# --------------------------------------------------------------------------- recipes, ADA, resume, bad input

PROJ = dict(TINY, resolution=32, recipe="projected")


def test_projected_recipe_resume_is_exact_and_checkpoint_has_no_vgg(faces, tmp_path):
    with pytest.warns(UserWarning, match="not 32x32"):
        a = train(faces, tmp_path / "a", kimg=0.02, snapshot_kimg=0.012, **PROJ)
    assert a["config"]["lr"] == 0.0002 and a["config"]["r1_gamma"] == 0.0
    state, tensors = load_training_checkpoint(tmp_path / "a")
    d_keys = [k for k in tensors if k.startswith("D.")]
    assert d_keys and not any(".vgg." in k for k in d_keys)  # the frozen trunk comes from its own file
    assert tensors["D.mix0"].shape == (64, 128, 1, 1) and any(".running_mean" in k for k in d_keys)
    assert all(k.startswith(("D.heads.", "D.mix")) for k in d_keys)
    _assert_interrupted_run_resumes_exactly(faces, tmp_path, a, PROJ)


@pytest.mark.filterwarnings("ignore:.*not 16x16")
def test_ada_probability_moves_and_resumes_exactly(faces, tmp_path):
    ada = dict(TINY, augment="ada", ada_kimg=0.05, ada_target=0.0)  # target 0: any positive D(real) raises p
    a = train(faces, tmp_path / "a", kimg=0.064, snapshot_kimg=0.032, **ada)  # 16 steps, p adjusted every 4
    _, tensors = load_training_checkpoint(tmp_path / "a")
    assert a["config"]["adaptive"] and float(tensors["ada.p"]) != 0.0
    train(faces, tmp_path / "b", kimg=0.032, snapshot_kimg=0.032, **ada)
    b = train(faces, tmp_path / "b", kimg=0.064, snapshot_kimg=0.032, **ada)
    assert b["history"] == a["history"][8:]
    assert torch.equal(load_training_checkpoint(tmp_path / "b")[1]["ada.p"], tensors["ada.p"])


def test_adaptive_augment_probability():
    from genprior.training.augment import ADA_INTERVAL, AdaptiveAugment

    x = torch.rand(6, 3, 8, 8) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(diff_augment(x, generator=gen, p=0.0), x)  # p 0: every op skipped
    assert not torch.equal(diff_augment(x, generator=gen, p=1.0), x)
    aug = AdaptiveAugment("color", adaptive=True, target=0.6, ada_kimg=1.0)
    for step in range(1, ADA_INTERVAL + 1):
        aug.observe(torch.tensor(1.0), step, batch=10)  # D(real) > 0 everywhere: over-confident
    assert float(aug.p) == pytest.approx(10 * ADA_INTERVAL / 1000)
    for step in range(ADA_INTERVAL + 1, 3 * ADA_INTERVAL + 1):
        aug.observe(torch.tensor(-1.0), step, batch=10)
    assert float(aug.p) == 0.0  # clipped at 0


@pytest.mark.filterwarnings("ignore:.*not 16x16")
def test_nan_losses_stop_with_the_last_good_snapshot_kept(faces, tmp_path, monkeypatch):
    from genprior.training import loss as loss_module

    train(faces, tmp_path, kimg=0.012, snapshot_kimg=0.012, **TINY)  # a good snapshot at step 3
    calls = {"n": 0}
    original = loss_module.StyleGAN2Loss.g_term

    def poisoned(self, logits):  # the 2nd G step of the resumed call (step 5) turns NaN
        calls["n"] += 1
        out = original(self, logits)
        return out * float("nan") if calls["n"] >= 2 else out

    monkeypatch.setattr(loss_module.StyleGAN2Loss, "g_term", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite losses at step 5 .*checkpoint-00000004.safetensors "
                                            r"\(step 4\), is kept"):
        train(faces, tmp_path, kimg=1, snapshot_kimg=0.004, **TINY)  # would snapshot after every step
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["step"] == 4  # step 4 was still good and saved; nothing after it
    assert not (tmp_path / "network-00000005.safetensors").exists()
    G, _ = _state(tmp_path / "network-latest.safetensors")
    assert all(torch.isfinite(p).all() for p in G.parameters())


def test_train_on_an_empty_folder_creates_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        train(tmp_path / "empty", tmp_path / "run", resolution=16, kimg=1, progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(TrainingError, match="projected recipe needs resolution >= 32"):
        train(tmp_path / "empty", tmp_path / "run", resolution=16, kimg=1, recipe="projected")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kw,message", [
    (dict(batch=0), "batch must be an integer > 0, not 0"),
    (dict(batch=8, batch_gpu=3), r"batch \(8\) must be a multiple of batch_gpu \(3\)"),
    (dict(recipe="bigan"), "unknown recipe 'bigan'; known: stylegan2, projected"),
    (dict(augment="colour"), "unknown DiffAugment policy 'colour'"),
    (dict(lr=float("nan")), "lr must be a number > 0, not nan"),
    (dict(device="tpu"), "device must be auto, cpu, cuda, cuda:N or mps, not 'tpu'"),
    (dict(ada_target=1.5), r"ada_target must be in \[0, 1\]"),
    (dict(recipe="projected", resolution=64, r1_gamma=1.0), "uses no R1 penalty"),
])
def test_config_refuses_bad_settings(kw, message):
    with pytest.raises(TrainingError, match=message):
        TrainingConfig(**{"resolution": 16, "kimg": 1, **kw})


@pytest.mark.filterwarnings("ignore:.*not 16x16", "ignore:.*not 32x32")
def test_resume_may_change_the_learning_rate_with_a_note(faces, tmp_path):
    train(faces, tmp_path, kimg=0.008, snapshot_kimg=1, **TINY)
    lines = []
    out = train(faces, tmp_path, kimg=0.016, snapshot_kimg=1, lr=0.001, **{**TINY, "progress": True},
                log=lines.append)
    assert any("note: lr is 0.001 from here on (the run used 0.0025)" in m for m in lines)
    assert out["config"]["lr"] == 0.001
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["opt_G_groups"][0]["lr"] == 0.001
    assert state["opt_D_groups"][0]["lr"] == pytest.approx(0.001 * 16 / 17)
    with pytest.raises(TrainingError, match="recipe: 'stylegan2' in the run"):
        train(faces, tmp_path, kimg=0.02, **{**TINY, "resolution": 32, "recipe": "projected"})


@pytest.mark.filterwarnings("ignore:.*not 16x16")
def test_fp16_blocks_and_channels_last_run_on_a_cpu(faces, tmp_path):
    out = train(faces, tmp_path, kimg=0.008, snapshot_kimg=1, num_fp16_res=2, channels_last=True, batch_gpu=2,
                **TINY)
    assert out["config"]["num_fp16_res"] == 2 and out["config"]["conv_clamp"] == 256
    G = load_generator(tmp_path / "network-latest.safetensors", device="cpu")
    kw = G.config["kwargs"]["synthesis_kwargs"]
    assert kw["num_fp16_res"] == 2 and kw["conv_clamp"] == 256  # in float32 here, in float16 on CUDA
    assert G.synthesis.b16.use_fp16 and G.synthesis.b8.use_fp16 and not G.synthesis.b4.use_fp16


def test_auto_batch_arithmetic():
    from genprior.training.hardware import AUTO_BATCH_MAX, choose_batch, measure_batch

    gib = 2**30
    assert choose_batch(10 * gib, 0, 0.1 * gib) == 80  # 0.8 * 10 GiB / 0.1 GiB
    assert choose_batch(10 * gib, 0, 0.13 * gib) == 56  # rounded down to a multiple of 8
    assert choose_batch(140 * gib, 0, 0.01 * gib) == AUTO_BATCH_MAX  # capped
    assert choose_batch(140 * gib, 0, 0.01 * gib, world_size=4) == AUTO_BATCH_MAX // 4
    assert choose_batch(gib, 0, gib) == 8  # never below one multiple
    assert measure_batch(torch.device("cpu"), lambda n: pytest.fail("no trial on a CPU")) == 16


VISION = dict(TINY, resolution=32, recipe="vision-aided")


def test_vision_aided_recipe_resume_is_exact_and_keeps_both_discriminators(faces, tmp_path):
    with pytest.warns(UserWarning, match="not 32x32"):
        a = train(faces, tmp_path / "a", kimg=0.02, snapshot_kimg=0.012, **VISION)
    assert a["config"]["lr"] == 0.0025 and a["config"]["r1_gamma"] == pytest.approx(0.0002 * 32**2 / 4)
    assert {"aux_fake", "aux_real", "process_cpu_hours"} <= set(a["stats"])
    state, tensors = load_training_checkpoint(tmp_path / "a")
    d_keys = [k for k in tensors if k.startswith("D.")]
    assert not any(".vgg." in k for k in d_keys)
    assert "D.main.b32.fromrgb.weight" in tensors and "D.projected.mix2" in tensors
    assert all(k.startswith(("D.main.", "D.projected.heads.", "D.projected.mix")) for k in d_keys)
    assert state["opt_D_groups"][0]["lr"] == pytest.approx(0.0025 * 16 / 17)  # lazy R1, as stylegan2
    assert state["cpu_sec"] > 0
    _assert_interrupted_run_resumes_exactly(faces, tmp_path, a, VISION)


def test_vision_aided_loss_terms_and_r1_on_the_main_part_only():
    import torch.nn.functional as F

    from genprior.training.augment import AdaptiveAugment
    from genprior.training.loss import REAL_TARGET, StyleGAN2Loss, VisionAidedLoss
    from genprior.training.networks import build_networks

    cfg = dict(resolution=32, channels=3, z_dim=8, w_dim=8, mapping_layers=1, g_channel_base=64, g_channel_max=8,
               d_channel_base=64, d_channel_max=8, recipe="vision-aided", seed=0, num_fp16_res=0, conv_clamp=None)
    torch.manual_seed(0)
    G, D = build_networks(cfg)
    assert len([p for p in D.parameters() if p.requires_grad]) < len(list(D.parameters()))  # VGG16 frozen
    D.requires_grad_(True)
    assert not any(p.requires_grad for p in D.projected.vgg.parameters())
    aug = AdaptiveAugment("")
    loss = VisionAidedLoss(G, D, aug, r1_gamma=2.0, r1_interval=4, aux_weight=0.5)
    fake, real = torch.randn(4, 5), torch.randn(4, 5)
    aux = (F.binary_cross_entropy_with_logits(fake[:, 1:], torch.zeros(4, 4))
           + F.binary_cross_entropy_with_logits(real[:, 1:], torch.full((4, 4), REAL_TARGET)))
    assert loss.d_terms(fake, real).item() == pytest.approx(
        (F.softplus(fake[:, 0]).mean() + F.softplus(-real[:, 0]).mean() + 0.5 * aux).item(), rel=1e-6)
    g_aux = F.binary_cross_entropy_with_logits(fake[:, 1:], torch.full((4, 4), REAL_TARGET))
    assert loss.g_term(fake).item() == pytest.approx((F.softplus(-fake[:, 0]).mean() + 0.5 * g_aux).item(), rel=1e-6)
    # R1: the gradient of the main logits alone, as StyleGAN2Loss computes it on D.main
    x = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    chunk = type("C", (), {"generator": None})()
    penalty, stats = loss.regulariser(x, loss.run_D(x, chunk, regularised=True))
    ref = StyleGAN2Loss(G, D.main, aug, r1_gamma=2.0, r1_interval=4)
    ref_penalty, ref_stats = ref.regulariser(x, ref.run_D(x, chunk))
    assert penalty.item() == pytest.approx(ref_penalty.item(), rel=1e-5) and stats["r1"] > 0
    assert D(x.detach()).shape == (4, 4)  # main logit first, then one per projected scale


@pytest.mark.filterwarnings("ignore:.*not 32x32")
def test_random_features_are_seeded_and_see_noise_blur_and_stripes(shared):
    from genprior.metrics.generative import random_features

    imgs = load_dataset(shared / "data" / "faces-utk64", resolution=32, channels=3, max_images=128, log=None)
    a, b = random_features(imgs[:64], seed=0), random_features(imgs[64:], seed=0)
    assert a.shape == (64, 512) and np.array_equal(a, random_features(imgs[:64], seed=0))
    assert not np.allclose(a, random_features(imgs[:64], seed=1))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    grey = random_features(imgs[:8, :1])
    assert grey.shape == (8, 512) and np.isfinite(grey).all()
    real = frechet_distance(a, b)  # two sets of real faces
    noise = torch.randint(0, 256, imgs[64:].shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    blurred = torch.nn.functional.avg_pool2d(imgs[64:].float(), 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    striped = imgs[64:].clone()
    striped[:, :, ::4] //= 2  # dark lines every 4 rows, like a generator's texture artefacts
    for other in (noise, blurred.to(torch.uint8), striped):
        assert frechet_distance(a, random_features(other)) > 1.3 * real


@pytest.mark.filterwarnings("ignore:.*not 16x16")
def test_init_generator_starts_g_from_a_network_file_and_refuses_another_shape(faces, tmp_path):
    train(faces, tmp_path / "a", kimg=0.02, snapshot_kimg=1, **TINY)
    start = tmp_path / "a" / "network-latest.safetensors"
    lines = []
    out = train(faces, tmp_path / "c", kimg=0.004, snapshot_kimg=1, init_generator=start,
                **{**TINY, "progress": True, "seed": 4}, log=lines.append)
    assert any(f"G and G_ema start from {start}" in m for m in lines) and out["step"] == 1
    _, sd_a = _state(start)
    _, sd_c = _state(tmp_path / "c" / "network-latest.safetensors")
    # one Adam step of lr 0.0025 away from the file's weights (a fresh seed-4 network is far from them)
    assert max((sd_a[k] - sd_c[k]).abs().max().item() for k in sd_a if sd_a[k].is_floating_point()) < 0.01
    with pytest.raises(TrainingError, match=r"init_generator: '.*network-latest.safetensors' in the run, None now"):
        train(faces, tmp_path / "c", kimg=0.008, snapshot_kimg=1, **{**TINY, "seed": 4})
    again = train(faces, tmp_path / "c", kimg=0.008, snapshot_kimg=1, init_generator=start, **{**TINY, "seed": 4})
    assert again["step"] == 2  # the same command resumes
    with pytest.raises(TrainingError, match=r"init_generator .*cannot start this run's generator from it"):
        train(faces, tmp_path / "d", kimg=0.004, init_generator=start, **{**TINY, "z_dim": 8})
    assert not (tmp_path / "d").exists()


def _assert_interrupted_run_resumes_exactly(faces, tmp_path, a, kw):
    """A run stopped at 12 images and resumed ends bit-exactly where the uninterrupted run ``a`` (in tmp/a) did."""
    with pytest.warns(UserWarning, match="not 32x32"):
        train(faces, tmp_path / "b", kimg=0.012, snapshot_kimg=0.012, **kw)
    with pytest.warns(UserWarning, match="not 32x32"):
        b = train(faces, tmp_path / "b", kimg=0.02, snapshot_kimg=0.012, **kw)
    assert b["history"] == a["history"][3:]
    _, sd_a = _state(tmp_path / "a" / "network-latest.safetensors")
    _, sd_b = _state(tmp_path / "b" / "network-latest.safetensors")
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
