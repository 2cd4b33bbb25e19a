"""StyleGAN2 training on a CPU (or any torch device): small networks, small data, resumable.

The method is StyleGAN2-ADA's (Karras et al. 2020) without path-length regularisation or style mixing:
non-saturating logistic loss, lazy R1 on the reals every 16 steps, Adam (lr 0.0025, betas 0/0.99), an EMA copy
of the generator with ramp-up, ``update_w_avg`` during training, and DiffAugment (colour, translation, cutout)
on reals and fakes for small data sets.

``out_dir`` holds everything a run writes:

=================================  ======================================================================
``checkpoint.json``                the state of the last snapshot (config, step, images seen, optimiser
                                   groups) and the name of its tensor file; written last, atomically
``checkpoint-<step>.safetensors``  G, D, G_ema, Adam moments, RNG state (the last two are kept)
``network-<step>.safetensors``     G_ema in genprior's native format (``genprior.load_generator``)
``network-latest.safetensors``     the newest of those
``samples-<step>.png``             a grid of G_ema samples from fixed seeds; ``reals.png`` the data
``log.txt``, ``stats.jsonl``       the progress lines, and one JSON record per progress tick
=================================  ======================================================================

Calling `train` again with the same ``out_dir`` resumes from the last snapshot exactly: the same step, and the
same losses as a run that was never interrupted. SIGINT (Ctrl-C) and SIGTERM save a snapshot before exiting.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import GenpriorError
from ..generators.stylegan2 import StyleGAN2Generator
from ..io.atomic import atomic_path
from ..io.checkpoints import save_native
from ..io.images import image_grid, save_image
from .augment import DEFAULT_POLICY, diff_augment
from .data import check_resolution, load_dataset, split_holdout
from .discriminator import StyleGAN2Discriminator

__all__ = ["train", "TrainingError", "build_networks", "load_training_checkpoint", "model_size_bytes",
           "save_image_grid"]

CHECKPOINT_FORMAT = "genprior-training-checkpoint"
CHECKPOINT_VERSION = 1
R1_INTERVAL = 16
EMA_RAMPUP = 0.05
KEEP_CHECKPOINTS = 2
# keys of the config that define the run: a resume with other values is refused
ARCH_KEYS = ("resolution", "channels", "batch", "g_channel_base", "g_channel_max", "d_channel_base",
             "d_channel_max", "z_dim", "w_dim", "mapping_layers", "lr", "r1_gamma", "ema_kimg", "augment",
             "mirror", "seed", "holdout")


class TrainingError(GenpriorError):
    """A training run cannot start or resume as asked."""


# ------------------------------------------------------------------------------------------------ networks
def build_networks(cfg: dict[str, Any]) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    """Freshly initialised (G, D) for a training config (the global torch RNG draws the weights)."""
    G = StyleGAN2Generator(
        z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], img_resolution=cfg["resolution"], img_channels=cfg["channels"],
        mapping_kwargs={"num_layers": cfg["mapping_layers"]},
        synthesis_kwargs={"channel_base": cfg["g_channel_base"], "channel_max": cfg["g_channel_max"]},
    )
    D = StyleGAN2Discriminator(img_resolution=cfg["resolution"], img_channels=cfg["channels"],
                               channel_base=cfg["d_channel_base"], channel_max=cfg["d_channel_max"])
    return G, D


def model_size_bytes(module: torch.nn.Module) -> int:
    """Bytes of the module's float32 state dict (what the native safetensors file holds, plus a small header)."""
    return sum(v.numel() * 4 for v in module.state_dict().values())


# ------------------------------------------------------------------------------------------------ images
def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C)."""
    x = ((img.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def save_image_grid(images: np.ndarray, path: str | os.PathLike, cols: int | None = None) -> Path:
    """Tile uint8 images (N, H, W, C) into one PNG (written atomically, replacing an older grid)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    return save_image(image_grid(x, cols, pad=0), path, overwrite=True)


# ------------------------------------------------------------------------------------------------ checkpoints
def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(text)


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"{prefix}/{idx}/{k}"] = t.detach().contiguous().cpu().clone()
    return tensors, sd["param_groups"]


def _optimizer_state(tensors: dict[str, torch.Tensor], prefix: str, groups: list) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": groups}


def load_training_checkpoint(out_dir: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """(state JSON, tensors) of the last snapshot in ``out_dir``, or None when there is none."""
    out_dir = Path(out_dir)
    pointer = out_dir / "checkpoint.json"
    candidates: list[Path] = []
    if pointer.is_file():
        try:
            candidates.append(out_dir / json.loads(pointer.read_text())["tensors_file"])
        except (json.JSONDecodeError, KeyError) as exc:
            warnings.warn(f"{pointer}: unreadable ({exc}); looking for checkpoint files instead", stacklevel=2)
    candidates += sorted(out_dir.glob("checkpoint-*.safetensors"), reverse=True)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            state = json.loads(meta["genprior_training"])
            tensors = load_file(str(path))
        except Exception as exc:  # a damaged file: fall back to the one before
            warnings.warn(f"{path}: unreadable training checkpoint ({exc}); trying an older one", stacklevel=2)
            continue
        if state.get("format") != CHECKPOINT_FORMAT:
            continue
        return state, tensors
    return None


# ------------------------------------------------------------------------------------------------ interrupts
@contextmanager
def _stop_flag() -> Iterator[dict[str, Any]]:
    """A dict whose ``"stop"`` turns to the signal name on SIGINT/SIGTERM (main thread only); a second SIGINT
    interrupts at once."""
    flag: dict[str, Any] = {"stop": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = signal.Signals(signum).name
        print(f"\n{flag['stop']} received: saving a snapshot after this step (Ctrl-C again to abort)", flush=True)

    for s in old:
        signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------------------------ training
def _auto_r1_gamma(resolution: int, batch: int) -> float:
    """StyleGAN2-ADA's 'auto' heuristic: 0.0002 * resolution² / batch."""
    return 0.0002 * resolution**2 / batch


def train(
    data: str | os.PathLike | torch.Tensor,
    out_dir: str | os.PathLike,
    *,
    resolution: int,
    channels: int | None = None,
    kimg: float,
    batch: int = 16,
    g_channel_base: int = 4096,
    g_channel_max: int = 128,
    d_channel_base: int = 4096,
    d_channel_max: int = 128,
    z_dim: int = 128,
    w_dim: int = 128,
    mapping_layers: int = 4,
    lr: float = 0.0025,
    r1_gamma: float | None = None,
    ema_kimg: float | None = None,
    augment: str = "diffaugment",
    mirror: bool = False,
    snapshot_kimg: float = 2.0,
    seed: int = 0,
    holdout: int = 0,
    resume: bool = True,
    progress: bool = True,
    progress_sec: float = 60.0,
    num_threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a StyleGAN2 generator on ``data`` until ``kimg`` thousand real images have been shown.

    Args:
        data: a folder of images, a zip archive, an MNIST idx file, or a uint8 tensor (N, C, R, R).
        out_dir: where snapshots go (see the module docstring); an existing run there is resumed.
        resolution, channels: the images' size (a power of two) and 1 (grey) or 3 (RGB); channels None
            keeps the data's (grey if every image is grey).
        kimg: total length of the run (a resumed run continues up to it; raise it to train longer).
        batch: images per step (also the minibatch-std group pool; a multiple of 4 is best).
        g_channel_base, g_channel_max, d_channel_base, d_channel_max: widths, min(base / res, max) per block.
        z_dim, w_dim, mapping_layers: latent sizes and depth of the mapping network.
        lr: Adam learning rate of G and D (betas 0, 0.99; D's adjusted for lazy R1).
        r1_gamma: R1 weight; None uses 0.0002 * resolution² / batch.
        ema_kimg: half-life of the EMA generator in kimg; None uses batch * 10 / 32.
        augment: "diffaugment" (colour, translation, cutout), a DiffAugment policy such as "translation,cutout",
            or "none".
        mirror: also show every real image flipped left-right (x-flips of the data set).
        snapshot_kimg: kimg between snapshots (checkpoint, sample grid, exported G_ema).
        seed: seeds the weights, latents, batches and augmentations.
        holdout: hold out the last ``holdout`` images of ``data`` (not trained on; for the metric).
        resume: continue the run in ``out_dir`` if there is one (False refuses to touch an existing run).
        progress: print progress lines (they also go to ``log.txt``); every ``progress_sec`` seconds.
        num_threads: ``torch.set_num_threads`` for the run (1 for long runs on a shared CPU).
        log: where progress lines go (default print).
    Returns:
        A summary: step, kimg, the last losses, sec/kimg, paths of the last snapshot files, and ``history``
        (step, loss_G, loss_D) of the steps run by this call.
    Raises:
        TrainingError: bad settings, or a run in ``out_dir`` with another configuration.
        KeyboardInterrupt: after saving a snapshot, on SIGINT or SIGTERM.
    """
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    resolution = check_resolution(resolution)
    if batch < 1:
        raise TrainingError(f"batch must be >= 1, not {batch}")
    if kimg <= 0 or snapshot_kimg <= 0:
        raise TrainingError("kimg and snapshot_kimg must be positive")
    policy = {"diffaugment": DEFAULT_POLICY, "none": ""}.get(augment, augment)
    diff_augment(torch.zeros(1, 1, 4, 4), policy)  # validates the policy
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(out_dir / "log.txt", "a")

    def say(msg: str) -> None:
        log_file.write(msg + "\n")
        log_file.flush()
        if progress:
            (log or (lambda m: print(m, flush=True)))(msg)

    try:
        return _train(**locals())
    finally:
        log_file.close()


def _train(*, data, out_dir: Path, resolution, channels, kimg, batch, g_channel_base, g_channel_max,
           d_channel_base, d_channel_max, z_dim, w_dim, mapping_layers, lr, r1_gamma, ema_kimg, augment, mirror,
           snapshot_kimg, seed, holdout, resume, progress, progress_sec, num_threads, log, policy, say,
           log_file) -> dict[str, Any]:
    # ---- data
    if isinstance(data, torch.Tensor):
        images, data_desc = data, f"<tensor {tuple(data.shape)}>"
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TrainingError(f"a data tensor must be uint8 (N, C, R, R), got {images.dtype} {tuple(images.shape)}")
        if channels is not None and images.shape[1] != channels:
            raise TrainingError(f"the data tensor has {images.shape[1]} channels, not {channels}")
        if images.shape[2:] != (resolution, resolution):
            raise TrainingError(f"the data tensor is {tuple(images.shape[2:])}, not {resolution}x{resolution}")
    else:
        data_desc = str(Path(data).resolve())
        images = load_dataset(data, resolution=resolution, channels=channels, log=say)
    channels = int(images.shape[1])
    if holdout:
        images, _ = split_holdout(images, holdout)
    if images.shape[0] < 1:
        raise TrainingError("no training images")
    cfg = dict(data=data_desc, resolution=resolution, channels=channels, batch=batch, g_channel_base=g_channel_base,
               g_channel_max=g_channel_max, d_channel_base=d_channel_base, d_channel_max=d_channel_max, z_dim=z_dim,
               w_dim=w_dim, mapping_layers=mapping_layers, lr=lr,
               r1_gamma=float(r1_gamma if r1_gamma is not None else _auto_r1_gamma(resolution, batch)),
               ema_kimg=float(ema_kimg if ema_kimg is not None else batch * 10 / 32), augment=policy,
               mirror=bool(mirror), seed=seed, holdout=holdout, num_images=int(images.shape[0]))

    # ---- networks, optimisers, state
    torch.manual_seed(seed)
    G, D = build_networks(cfg)
    G_ema = StyleGAN2Generator(**G.init_kwargs)
    G_ema.load_state_dict(G.state_dict())
    G_ema.eval().requires_grad_(False)
    G.train()
    D.train()
    ratio = R1_INTERVAL / (R1_INTERVAL + 1)
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
    step, cur_nimg, train_sec = 0, 0, 0.0

    found = load_training_checkpoint(out_dir) if resume else None
    if not resume and (out_dir / "checkpoint.json").exists():
        raise TrainingError(f"{out_dir} holds a run already; pass resume=True to continue it or use another folder")
    if found is not None:
        state, tensors = found
        old = state["config"]
        diff = {k: (old.get(k), cfg[k]) for k in ARCH_KEYS if old.get(k) != cfg[k]}
        if diff:
            listed = ", ".join(f"{k}: {a!r} in the run, {b!r} now" for k, (a, b) in diff.items())
            raise TrainingError(f"{out_dir} holds a run with another configuration ({listed}); use the same "
                                "settings to resume it, or another out_dir")
        if old.get("data") != cfg["data"]:
            warnings.warn(f"resuming a run trained on {old.get('data')} with data {cfg['data']}", stacklevel=3)
        for prefix, module in (("G", G), ("D", D), ("G_ema", G_ema)):
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items()
                                    if k.startswith(prefix + ".")})
        opt_G.load_state_dict(_optimizer_state(tensors, "opt_G", state["opt_G_groups"]))
        opt_D.load_state_dict(_optimizer_state(tensors, "opt_D", state["opt_D_groups"]))
        torch.set_rng_state(tensors["rng.torch"])
        step, cur_nimg, train_sec = state["step"], state["cur_nimg"], state["train_sec"]
        say(f"resumed {out_dir} at step {step} ({cur_nimg / 1000:.3f} kimg, {train_sec / 3600:.2f} h trained)")
    else:
        say(f"new run in {out_dir}: {json.dumps(cfg)}")
        save_image_grid(to_uint8(images[: 64].float() / 127.5 - 1), out_dir / "reals.png")
    say(f"G {model_size_bytes(G) / 1e6:.2f} MB ({sum(p.numel() for p in G.parameters()) / 1e6:.2f} M params), "
        f"D {model_size_bytes(D) / 1e6:.2f} MB; {images.shape[0]} training images "
        f"{channels}x{resolution}x{resolution}; torch threads {torch.get_num_threads()}")

    total_nimg = int(round(kimg * 1000))
    snap_nimg = max(1, int(round(snapshot_kimg * 1000)))
    grid_n = 64 if resolution <= 128 else 16
    grid_z = G_ema.make_z(range(grid_n))
    last_files: dict[str, str] = {}

    def snapshot() -> None:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in (("G", G), ("D", D), ("G_ema", G_ema)):
            tensors.update({f"{prefix}.{k}": v.detach().contiguous().cpu().clone()
                            for k, v in module.state_dict().items()})
        tg, groups_G = _optimizer_tensors(opt_G, "opt_G")
        td, groups_D = _optimizer_tensors(opt_D, "opt_D")
        tensors.update(tg)
        tensors.update(td)
        tensors["rng.torch"] = torch.get_rng_state().clone()
        name = f"checkpoint-{step:08d}.safetensors"
        state = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, genprior_version=__version__,
                     config=cfg, step=step, cur_nimg=cur_nimg, kimg=cur_nimg / 1000, train_sec=train_sec,
                     opt_G_groups=groups_G, opt_D_groups=groups_D, tensors_file=name, time=time.time())
        _atomic_save_tensors(tensors, out_dir / name, {"genprior_training": json.dumps(state)})
        extra = {"training": {"kimg": round(cur_nimg / 1000, 3), "step": step, "cpu_hours": round(train_sec / 3600, 4),
                              **{k: cfg[k] for k in cfg if k != "data"}, "data": cfg["data"]}}
        net = save_native(G_ema, out_dir / f"network-{step:08d}.safetensors", overwrite=True, extra=extra)
        save_native(G_ema, out_dir / "network-latest.safetensors", overwrite=True, extra=extra)
        with torch.no_grad():
            samples = torch.cat([G_ema.synthesis(G_ema.mapping(z), noise_mode="const")
                                 for z in grid_z.split(16)])
        grid = save_image_grid(to_uint8(samples), out_dir / f"samples-{step:08d}.png")
        _atomic_write_text(out_dir / "checkpoint.json", json.dumps(state, indent=1))
        for old in sorted(out_dir.glob("checkpoint-*.safetensors"))[:-KEEP_CHECKPOINTS]:
            if old.name != name:
                old.unlink(missing_ok=True)
        last_files.update(checkpoint=str(out_dir / name), network=str(net), samples=str(grid))
        say(f"snapshot at step {step} ({cur_nimg / 1000:.3f} kimg): {net.name}, {grid.name}")

    # ---- the loop
    n_real = images.shape[0]
    history: list[tuple[int, float, float]] = []
    tick: dict[str, list[float]] = {}
    tick_start, tick_nimg = time.time(), cur_nimg
    last_snap_nimg = cur_nimg
    result_stats: dict[str, float] = {}

    def report(force: bool = False) -> None:
        nonlocal tick, tick_start, tick_nimg
        now = time.time()
        if not tick or (not force and now - tick_start < progress_sec):
            return
        means = {k: float(np.mean(v)) for k, v in tick.items()}
        sec_per_kimg = (now - tick_start) / max((cur_nimg - tick_nimg) / 1000, 1e-9)
        rec = dict(step=step, kimg=cur_nimg / 1000, sec_per_kimg=sec_per_kimg, kimg_per_hour=3600 / sec_per_kimg,
                   train_hours=train_sec / 3600, time=now, **means)
        with open(out_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        r1_text = f"{means['r1']:.4f}" if "r1" in means else "  -   "
        say(f"kimg {cur_nimg / 1000:9.3f}  step {step:7d}  G {means['loss_G']:.3f}  D {means['loss_D']:.3f}  "
            f"R1 {r1_text}  D(real) {means['logit_real']:+.2f}  "
            f"D(fake) {means['logit_fake']:+.2f}  sec/kimg {sec_per_kimg:7.1f}  kimg/h {3600 / sec_per_kimg:6.1f}  "
            f"trained {train_sec / 3600:.2f} h")
        result_stats.update(rec)
        tick, tick_start, tick_nimg = {}, now, cur_nimg

    def aug(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, policy) if policy else x

    with _stop_flag() as flag:
        while cur_nimg < total_nimg:
            t0 = time.time()
            # -- G: non-saturating loss on augmented fakes
            G.requires_grad_(True)
            D.requires_grad_(False)
            z = torch.randn(batch, z_dim)
            ws = G.mapping(z, update_w_avg=True)
            fake = G.synthesis(ws, noise_mode="random")
            logits_fake = D(aug(fake))
            loss_G = F.softplus(-logits_fake).mean()
            opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
            opt_G.step()

            # -- D: logistic loss on fakes and reals, lazy R1 on the reals every R1_INTERVAL steps
            G.requires_grad_(False)
            D.requires_grad_(True)
            with torch.no_grad():
                z = torch.randn(batch, z_dim)
                fake = G.synthesis(G.mapping(z), noise_mode="random")
            idx = torch.randint(n_real, (batch,))
            real = images[idx].float() / 127.5 - 1
            if mirror:
                flip = torch.rand(batch) < 0.5
                real = torch.where(flip[:, None, None, None], real.flip(3), real)
            do_r1 = cfg["r1_gamma"] > 0 and step % R1_INTERVAL == 0
            real.requires_grad_(do_r1)
            logits_fake = D(aug(fake))
            logits_real = D(aug(real))
            loss_D = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
            total_D = loss_D
            if do_r1:
                (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
                r1 = grad.square().sum(dim=[1, 2, 3]).mean()
                total_D = loss_D + r1 * (cfg["r1_gamma"] / 2) * R1_INTERVAL
                tick.setdefault("r1", []).append(float(r1.detach()))
            opt_D.zero_grad(set_to_none=True)
            total_D.backward()
            opt_D.step()

            # -- EMA generator with ramp-up
            with torch.no_grad():
                ema_nimg = min(cfg["ema_kimg"] * 1000, cur_nimg * EMA_RAMPUP)
                beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.detach().lerp(p_ema, beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)

            step += 1
            cur_nimg += batch
            train_sec += time.time() - t0
            lg, ld = float(loss_G.detach()), float(loss_D.detach())
            if not (math.isfinite(lg) and math.isfinite(ld)):
                raise TrainingError(f"the losses diverged at step {step} (G {lg}, D {ld}); resume from the last "
                                    "snapshot with a lower lr or a higher r1_gamma")
            history.append((step, lg, ld))
            for k, v in (("loss_G", lg), ("loss_D", ld), ("logit_real", float(logits_real.detach().mean())),
                         ("logit_fake", float(logits_fake.detach().mean()))):
                tick.setdefault(k, []).append(v)
            report()
            if flag["stop"] is not None:
                report(force=True)
                snapshot()
                say(f"stopped by {flag['stop']} at step {step}; the same command resumes from here")
                raise KeyboardInterrupt
            if cur_nimg - last_snap_nimg >= snap_nimg:
                report(force=True)
                snapshot()
                last_snap_nimg = cur_nimg
        report(force=True)
        if last_snap_nimg != cur_nimg or not (out_dir / "checkpoint.json").exists():
            snapshot()
        elif not history:
            say(f"{out_dir} is trained to {cur_nimg / 1000:.3f} kimg already (asked for {kimg}); raise kimg to go on")
    return dict(step=step, kimg=cur_nimg / 1000, train_sec=train_sec, config=cfg, history=history,
                stats=result_stats, files=dict(last_files), out_dir=str(out_dir))
