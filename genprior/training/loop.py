"""GAN training on a CPU, one GPU or several (torchrun): small networks, small data, resumable bit for bit.

Three recipes share the StyleGAN2 generator, Adam (betas 0, 0.99), an EMA copy of the generator with ramp-up,
``update_w_avg`` during training, and augmentation of reals and fakes (DiffAugment, or ADA's adaptive
probability over it):

* ``stylegan2`` (StyleGAN2-ADA without path-length regularisation or style mixing): its residual
  discriminator, non-saturating logistic loss, lazy R1 every 16 steps, lr 0.0025 (D's adjusted for lazy R1);
* ``projected`` (Projected GAN): a discriminator on frozen ImageNet VGG16 features with fixed random
  projections and small trainable heads (`genprior.training.projected`), hinge loss, no R1, lr 0.0002;
* ``vision-aided`` (Kumari et al. 2022): StyleGAN2's recipe with the projected heads added beside its
  discriminator (`genprior.training.loss.VisionAidedLoss`), lr 0.0025.

On CUDA the ``num_fp16_res`` highest-resolution blocks of G and D run in float16 with conv_clamp 256, as the
official code; statistics stay on the device and are read every ``CHECK_EVERY_GPU`` steps and at progress
lines, never per step. Several processes (`genprior.training.distributed`) split every batch; see
`genprior.training.batches` for why one process and N processes compute the same.

``out_dir`` holds everything a run writes:

=================================  ======================================================================
``checkpoint.json``                the state of the last snapshot (config, step, images seen, optimiser
                                   groups) and the name of its tensor file; written last, atomically
``checkpoint-<step>.safetensors``  G, D (without frozen VGG16 weights), G_ema, Adam moments, ADA state
``network-<step>.safetensors``     G_ema in genprior's native format (``genprior.load_generator``)
``network-latest.safetensors``     the newest of those
``samples-<step>.png``             a grid of G_ema samples from fixed seeds; ``reals.png`` the data
``log.txt``, ``stats.jsonl``       the progress lines, and one JSON record per progress line
=================================  ======================================================================

Calling `train` again with the same ``out_dir`` resumes from the last snapshot exactly: the same step, and the
same losses as a run that was never interrupted. SIGINT (Ctrl-C) and SIGTERM save a snapshot before exiting;
``max_sec`` ends a call after that much wall time with a snapshot. Losses that turn NaN stop the run without
writing a snapshot, so the last good one stays the newest. Bad settings or data fail before ``out_dir`` is
created.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from .. import __version__
from ..errors import GenpriorError
from . import run_state
from .augment import AdaptiveAugment
from .batches import ChunkSampler
from .config import R1_RECIPES, TrainingConfig, TrainingError, check_resume
from .data import load_training_images
from .distributed import World, world_from_env
from .hardware import measure_batch, training_device
from .loss import GANLoss, make_loss
from .monitor import PendingLosses, StopFlag, Ticker, TrainingLog
from .snapshot import export_network, model_size_bytes, sample_grid, save_image_grid, to_uint8
from .networks import R1_INTERVAL, Nets, build_networks, make_nets
from .steps import ema_update, train_step

__all__ = ["train", "run", "TrainingError", "build_networks", "load_training_checkpoint", "model_size_bytes",
           "save_image_grid"]

CHECKPOINT_FORMAT = "genprior-training-checkpoint"
CHECKPOINT_VERSION = 2
META_KEY = "genprior_training"
EMA_RAMPUP = 0.05
CHECK_EVERY_GPU = 50  # steps between host reads of the losses on a GPU (every step on a CPU: they cost nothing)


def load_training_checkpoint(out_dir: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """(state JSON, tensors) of the last snapshot in ``out_dir``, or None when there is none."""
    return run_state.load_checkpoint(out_dir, fmt=CHECKPOINT_FORMAT, meta_keys=(META_KEY,))


def train(
    data: str | os.PathLike | torch.Tensor, out_dir: str | os.PathLike, *, resolution: int, channels: int | None = None,
    kimg: float, batch: int | str = 16, batch_gpu: int | None = None, g_channel_base: int = 4096,
    g_channel_max: int = 128, d_channel_base: int = 4096, d_channel_max: int = 128, z_dim: int = 128,
    w_dim: int = 128, mapping_layers: int = 4, recipe: str = "stylegan2", lr: float | None = None,
    r1_gamma: float | None = None, ema_kimg: float | None = None, augment: str = "diffaugment",
    ada_target: float = 0.6, ada_kimg: float = 500.0, mirror: bool = False, snapshot_kimg: float = 2.0,
    seed: int = 0, holdout: int = 0, device: str = "auto", num_fp16_res: int | None = None,
    channels_last: bool = False, num_threads: int | None = None, max_sec: float | None = None,
    keep_checkpoints: int = 2, init_generator: str | os.PathLike | None = None, resume: bool = True,
    progress: bool = True, progress_sec: float = 60.0, log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a StyleGAN2 generator on ``data`` until ``kimg`` thousand real images have been shown.

    Args:
        data: a folder of images, a zip archive, an MNIST idx file, or a uint8 tensor (N, C, R, R).
        out_dir: where snapshots go (see the module docstring); an existing run there is resumed.
        resolution, channels: the images' size (a power of two) and 1 (grey) or 3 (RGB); channels None
            keeps the data's (grey if every image is grey).
        kimg: total length of the run (a resumed run continues up to it; raise it to train longer).
        batch: images per step, or "auto" (fills a GPU's free memory; 16 on a CPU).
        batch_gpu: images per forward pass and process (None: the process's whole share; smaller values
            accumulate gradients, e.g. to reproduce a multi-GPU run on one).
        g_channel_base, g_channel_max, d_channel_base, d_channel_max: widths, min(base / res, max) per block.
        z_dim, w_dim, mapping_layers: latent sizes and depth of the mapping network.
        recipe: "stylegan2", "projected" or "vision-aided" (see the module docstring).
        lr: Adam learning rate of G and D (None: the recipe's).
        r1_gamma: R1 weight (stylegan2); None uses 0.0002 * resolution² / batch.
        ema_kimg: half-life of the EMA generator in kimg; None uses batch * 10 / 32.
        augment: "diffaugment" (colour, translation, cutout), "ada" (each of those ops with an adaptive
            probability, StyleGAN2-ADA's heuristic toward ``ada_target``, p moving by at most 1 per
            ``ada_kimg``), a DiffAugment policy such as "translation,cutout", or "none".
        mirror: also show every real image flipped left-right (x-flips of the data set).
        snapshot_kimg: kimg between snapshots (checkpoint, sample grid, exported G_ema).
        seed: seeds the weights, latents, batches and augmentations.
        holdout: hold out the last ``holdout`` images of ``data`` (not trained on; for the metric).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps" (each torchrun process takes cuda:LOCAL_RANK).
        num_fp16_res: G and D blocks in float16 on CUDA (None: 4 there, 0 elsewhere; a resumed run keeps its).
        channels_last: keep 4-D weights and activations in channels-last layout.
        num_threads: ``torch.set_num_threads`` for the run (1 for long runs on a shared CPU).
        max_sec: stop this call after this many seconds of wall time (snapshot written; call again to go on).
        keep_checkpoints: checkpoint files kept (the newest ones).
        init_generator: start a new run's G and G_ema from this native generator file (a ``network-*`` export
            or a shipped model of the same architecture); D starts fresh. Ignored when resuming.
        resume: continue the run in ``out_dir`` if there is one (False refuses to touch an existing run).
        progress: print progress lines (they also go to ``log.txt``); every ``progress_sec`` seconds.
        log: where progress lines go (default print).
    Returns:
        A summary: step, kimg, the last losses, sec/kimg, paths of the last snapshot files, ``stopped``
        ("time" when ``max_sec`` ended the call, else None), and ``history`` (step, loss_G, loss_D) of the
        steps run by this call.
    Raises:
        TrainingError: bad settings, a run in ``out_dir`` with another configuration, or losses that went NaN.
        DatasetError: unusable data (no images, a corrupt file, ...).
        KeyboardInterrupt: after saving a snapshot, on SIGINT or SIGTERM.
    """
    options = dict(locals())
    if init_generator is not None:
        options["init_generator"] = str(init_generator)
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    config = TrainingConfig(**{k: v for k, v in options.items() if k in fields})
    return run(config, data, out_dir, resume=resume, progress=progress, progress_sec=progress_sec, log=log)


def run(config: TrainingConfig, data: str | os.PathLike | torch.Tensor, out_dir: str | os.PathLike, *,
        resume: bool = True, progress: bool = True, progress_sec: float = 60.0,
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`train` with its settings as a `TrainingConfig`."""
    started = time.time()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    device = training_device(config.device)
    world = world_from_env(device)
    device = world.device(device)
    out_dir = Path(out_dir)
    echo = (log or (lambda m: print(m, flush=True))) if progress and world.is_main else None
    try:
        with TrainingLog(out_dir / "log.txt", echo=echo, write=world.is_main) as say:
            return _Run(config, data, out_dir, device=device, world=world, say=say, resume=resume,
                        progress_sec=progress_sec, started=started).train()
    finally:
        world.close()


class _Run:
    """One call of `train`: everything is set up (and checked) in the constructor, before ``out_dir`` exists."""

    def __init__(self, config: TrainingConfig, data: Any, out_dir: Path, *, device: torch.device, world: World,
                 say: TrainingLog, resume: bool, progress_sec: float, started: float) -> None:
        self.out_dir, self.device, self.world, self.say = out_dir, device, world, say
        self.progress_sec, self.started = progress_sec, started
        if not resume and (out_dir / "checkpoint.json").exists():
            raise TrainingError(f"{out_dir} holds a run already; pass resume=True to continue it or use another folder")
        images, data_desc = load_training_images(data, resolution=config.resolution, channels=config.channels,
                                                 holdout=config.holdout, log=say)
        found = load_training_checkpoint(out_dir) if resume and out_dir.is_dir() else None
        old = found[0]["config"] if found else None
        if old is not None:  # "auto" settings keep the run's values
            config = dataclasses.replace(
                config, batch=old["batch"] if config.batch == "auto" else config.batch,
                num_fp16_res=old.get("num_fp16_res", 0) if config.num_fp16_res is None else config.num_fp16_res)
        resolve = dict(channels=int(images.shape[1]), device_type=device.type, world_size=world.size)
        self.cfg = cfg = config.resolved(batch=(config.batch_gpu or 1) * world.size, **resolve)
        self.record = cfg.record(data=data_desc, num_images=int(images.shape[0]))
        notes = check_resume(old, self.record, str(out_dir)) if old is not None else []  # before any heavy work
        self.fp16 = device.type == "cuda" and bool(cfg.num_fp16_res)
        self.nets = make_nets(self.record, cfg, self.device, world)
        self.sampler = ChunkSampler(images.to(device), seed=cfg.seed, z_dim=cfg.z_dim, mirror=cfg.mirror,
                                    noise_shapes=self.nets.G.synthesis.noise_shapes(), device=device,
                                    channels_last=cfg.channels_last)
        if config.batch == "auto":
            unit = (config.batch_gpu or 1) * world.size
            total = world.minimum(measure_batch(device, self._trial, world_size=world.size), device)
            self.cfg = cfg = config.resolved(batch=max(total // unit, 1) * unit, **resolve)
            self.record = cfg.record(data=data_desc, num_images=int(images.shape[0]))
            say(f"batch auto: {cfg.batch} ({cfg.batch_gpu} per pass on {world.size} process(es), {device})")
        self.augment = AdaptiveAugment(cfg.policy, adaptive=cfg.adaptive, target=cfg.ada_target,
                                       ada_kimg=cfg.ada_kimg, device=device)
        self.loss = self._loss(self.nets, self.augment)
        self.step, self.cur_nimg, self.train_sec, self.cpu_sec = 0, 0, 0.0, 0.0
        self.last_good: tuple[int, Path] | None = None
        self.fresh = found is None
        if self.fresh and cfg.init_generator:
            self._init_generator(cfg.init_generator)
        if found is not None:
            for note in notes:
                say(f"note: {note}")
            if old.get("data") != self.record["data"]:
                warnings.warn(f"resuming a run trained on {old.get('data')} with data {self.record['data']}",
                              stacklevel=4)
            self._restore(*found)
        self.first_images = images[:64]

    # ------------------------------------------------------------------ setup
    def _loss(self, nets: Nets, augment: AdaptiveAugment) -> GANLoss:
        return make_loss(self.cfg.recipe, nets.G, nets.D, augment, r1_gamma=self.cfg.r1_gamma,
                         r1_interval=R1_INTERVAL, fp16=self.fp16, channels_last=self.cfg.channels_last)

    def _trial(self, n: int) -> None:
        """One step at ``n`` images per pass on copies of the networks (for ``batch="auto"``)."""
        nets = self.nets.copy()
        loss = self._loss(nets, AdaptiveAugment(self.cfg.policy, device=self.device))
        train_step(nets, loss, self.sampler, step=0, batch=n, batch_gpu=n, world=World(),
                   regularise=self.cfg.recipe in R1_RECIPES, fp16=self.fp16)

    def _init_generator(self, path: str) -> None:
        """G and G_ema from a native generator file; `TrainingError` if it is missing or of another shape."""
        from ..io.checkpoints import read_checkpoint

        try:
            _, sd = read_checkpoint(path)
            for G in (self.nets.G, self.nets.G_ema):
                G.load_state_dict({k: v.to(self.device) for k, v in sd.items()}, strict=True)
        except (GenpriorError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise TrainingError(f"init_generator {path}: cannot start this run's generator from it ({first})") from None
        self.say(f"G and G_ema start from {path}")

    def _restore(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.nets.load(tensors, state, lr=self.cfg.lr)
        self.augment.load_state_tensors(tensors)
        self.step, self.cur_nimg, self.train_sec = state["step"], state["cur_nimg"], state["train_sec"]
        self.cpu_sec = state.get("cpu_sec", 0.0)  # runs written before it was recorded: from here on
        self.last_good = (self.step, self.out_dir / state["tensors_file"])
        self.say(f"resumed {self.out_dir} at step {self.step} ({self.cur_nimg / 1000:.3f} kimg, "
                 f"{self.train_sec / 3600:.2f} h trained)")

    # ------------------------------------------------------------------ outputs
    def _snapshot(self) -> None:
        """Checkpoint, exported G_ema and sample grid (rank 0), after checking that nothing went NaN."""
        self._check(params=True)
        if self.world.is_main:
            n, step, out = self.nets, self.step, self.out_dir
            hours = round(self.train_sec / 3600, 4)
            info = {"kimg": round(self.cur_nimg / 1000, 3), "step": step, "train_hours": hours,
                    f"{'cpu' if self.device.type == 'cpu' else 'gpu'}_hours": hours, "device": self.device.type,
                    "process_cpu_hours": round(self.cpu_sec / 3600, 4),
                    **{k: v for k, v in self.record.items() if k != "data"}, "data": self.record["data"]}
            net = export_network(n.G_ema, out, step, info)
            grid = sample_grid(n.G_ema, self.grid_z, out / f"samples-{step:08d}.png")
            tensors, groups = n.state()
            state = dict(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, genprior_version=__version__,
                         config=self.record, step=step, cur_nimg=self.cur_nimg, kimg=self.cur_nimg / 1000,
                         train_sec=self.train_sec, cpu_sec=self.cpu_sec, device=self.device.type, time=time.time(),
                         **groups)
            ckpt = run_state.save_checkpoint(out, step, {**tensors, **self.augment.state_tensors()}, state,
                                             keep=self.cfg.keep_checkpoints, meta_key=META_KEY)
            self.files.update(checkpoint=str(ckpt), network=str(net), samples=str(grid))
            self.last_good = (step, ckpt)
            self.say(f"snapshot at step {step} ({self.cur_nimg / 1000:.3f} kimg): {net.name}, {grid.name}")
        self.last_snap_nimg = self.cur_nimg
        self.world.barrier()

    def _check(self, params: bool = False) -> None:
        """Read the pending losses (a host sync); NaN or inf there (or, with ``params``, in the weights) stops the
        run with the last good snapshot kept. Every process sees the same summed losses and stops alike."""
        rows = self.pending.flush()
        self.history += rows
        bad = next((f"at step {s} (G {g}, D {d})" for s, g, d in rows if not (math.isfinite(g) and math.isfinite(d))),
                   None)
        if bad is None and params and not self.nets.finite():
            bad = f"in the weights at step {self.step}"
        if bad is None:
            return
        kept = (f"the last good snapshot, {self.last_good[1].name} (step {self.last_good[0]}), is kept"
                if self.last_good else "no snapshot had been written yet")
        raise TrainingError(f"training diverged: non-finite losses {bad}; stopped without saving, {kept}; "
                            "resume it with a lower lr (or a higher r1_gamma, or more augmentation)")

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, Any]:
        cfg, say, out = self.cfg, self.say, self.out_dir
        if self.world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            say.open()
            if self.fresh:
                say(f"new run in {out}: {json.dumps(self.record)}")
                save_image_grid(to_uint8(self.first_images.float() / 127.5 - 1), out / "reals.png")
        G, D = self.nets.G, self.nets.D
        say(f"G {model_size_bytes(G) / 1e6:.2f} MB ({sum(p.numel() for p in G.parameters()) / 1e6:.2f} M params), "
            f"D {model_size_bytes(D) / 1e6:.2f} MB ({cfg.recipe}); {self.record['num_images']} training images "
            f"{cfg.channels}x{cfg.resolution}x{cfg.resolution}; {self.device}, {self.world.size} process(es), "
            f"batch {cfg.batch} ({cfg.batch_gpu} per pass), fp16 blocks {cfg.num_fp16_res if self.fp16 else 0}, "
            f"torch threads {torch.get_num_threads()}")
        self.grid_z = G.make_z(range(64 if cfg.resolution <= 128 else 16))
        self.pending, self.history, self.files = PendingLosses(), [], {}
        ticker = Ticker(out / "stats.jsonl", say, self.progress_sec, enabled=self.world.is_main)
        total_nimg, snap_nimg = int(round(cfg.kimg * 1000)), max(1, int(round(cfg.snapshot_kimg * 1000)))
        check_every = 1 if self.device.type == "cpu" else CHECK_EVERY_GPU
        self.last_snap_nimg, stopped = self.cur_nimg, None
        ticker.start(self.cur_nimg)
        with StopFlag() as flag:
            while self.cur_nimg < total_nimg:
                t0, c0 = time.time(), time.process_time()
                regularise = cfg.recipe in R1_RECIPES and cfg.r1_gamma > 0 and self.step % R1_INTERVAL == 0
                stats = train_step(self.nets, self.loss, self.sampler, step=self.step, batch=cfg.batch,
                                   batch_gpu=cfg.batch_gpu, world=self.world, regularise=regularise, fp16=self.fp16)
                ema_update(self.nets, cfg.ema_kimg, self.cur_nimg, cfg.batch, EMA_RAMPUP)
                self.step += 1
                self.cur_nimg += cfg.batch
                self.augment.observe(stats["sign_real"], self.step, cfg.batch)
                self.pending.add(self.step, stats)
                ticker.add(stats, self.augment)
                self.train_sec += time.time() - t0
                self.cpu_sec += time.process_time() - c0
                checking = self.step % check_every == 0
                if checking:
                    self._check()
                ticker.report(self.step, self.cur_nimg, self.train_sec, self.cpu_sec)
                signalled = flag.stop is not None
                over = cfg.max_sec is not None and time.time() - self.started >= cfg.max_sec
                if self.world.distributed:  # agree at fixed steps, so that no process waits for the others
                    signalled, over = self.world.agree((signalled, over), self.device) if checking else (False, False)
                if signalled or over:
                    ticker.report(self.step, self.cur_nimg, self.train_sec, self.cpu_sec, force=True)
                    self._snapshot()
                    if signalled:
                        say(f"stopped by {flag.stop or 'a signal'} at step {self.step}; the same command resumes")
                        raise KeyboardInterrupt
                    stopped = "time"
                    say(f"time budget of {cfg.max_sec:g} s spent at step {self.step}; the same command goes on")
                    break
                if self.cur_nimg - self.last_snap_nimg >= snap_nimg:
                    ticker.report(self.step, self.cur_nimg, self.train_sec, self.cpu_sec, force=True)
                    self._snapshot()
            if stopped is None:
                self._check()
                ticker.report(self.step, self.cur_nimg, self.train_sec, self.cpu_sec, force=True)
                if self.last_snap_nimg != self.cur_nimg or not (out / "checkpoint.json").exists():
                    self._snapshot()
                elif not self.history:
                    say(f"{out} is trained to {self.cur_nimg / 1000:.3f} kimg already (asked for {cfg.kimg}); "
                        "raise kimg to go on")
        return dict(step=self.step, kimg=self.cur_nimg / 1000, train_sec=self.train_sec, config=self.record,
                    history=self.history, stats=ticker.last, files=dict(self.files), out_dir=str(out),
                    stopped=stopped)
