"""The ``genprior`` command: a thin layer over the same functions a Python user calls."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import torch

from . import __version__
from .errors import GenpriorError
from .physics.superres import KERNELS
from .progress import notice, one_line_warnings
from .restore import METHODS, TASKS


def parse_range(text: str) -> list[int]:
    """'0,1,4-6' -> [0, 1, 4, 5, 6] (NVlabs' seed syntax)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1) if not part.startswith("-") else (part, part)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    if not out:
        raise click.BadParameter(f"no numbers in {text!r}")
    return out


class _Setting(click.ParamType):
    """KEY=VALUE for a method setting; VALUE is read as JSON when it parses (numbers, true/false, objects)."""

    name = "key=value"

    def convert(self, value, param, ctx):  # noqa: ANN001
        if isinstance(value, tuple):
            return value
        key, sep, raw = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = raw
        return key.strip(), parsed


SETTINGS = click.option("--set", "settings", type=_Setting(), multiple=True,
                        help="A method setting KEY=VALUE (repeatable), e.g. --set tune_steps=50 --set map_steps=100.")


class _Seeds(click.ParamType):
    name = "seeds"

    def convert(self, value, param, ctx):  # noqa: ANN001
        try:
            return value if isinstance(value, list) else parse_range(value)
        except ValueError:
            self.fail(f"{value!r} is not a list like '0,1,4-6'", param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genprior")
def main() -> None:
    """Bayesian image restoration with deep generative priors."""


def _run(fn):  # noqa: ANN001, ANN202
    """Turn genprior's own errors into one clean message and exit code 1 (Ctrl-C: a line and 130)."""
    try:
        with one_line_warnings():
            return fn()
    except (GenpriorError, FileExistsError, ValueError) as exc:
        text = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip()) or type(exc).__name__
        click.echo(f"error: {text}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


@main.command()
@click.option("--generator", "-g", required=True, help="Model name (see `genprior models`) or checkpoint path.")
@click.option("--seeds", type=_Seeds(), default="0-15", show_default=True, help="Seeds, e.g. '0,1,4-6'.")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--class", "class_idx", type=int, default=None, help="Class index for conditional generators.")
@click.option("--cols", type=int, default=None, help="Images per row (default: square grid).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def sample(generator, seeds, truncation_psi, noise_mode, class_idx, cols, device, output, overwrite) -> None:  # noqa: ANN001
    """Write a grid of samples from any loadable generator."""
    from .generators.sampling import sample_images
    from .io.checkpoints import load_generator
    from .io.images import image_grid, save_image

    def go() -> None:
        if output.exists() and not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
        G = load_generator(generator, device=device)
        torch.manual_seed(seeds[0])
        images = sample_images(G, seeds, truncation_psi=truncation_psi, noise_mode=noise_mode, class_idx=class_idx)
        save_image(image_grid(images.cpu(), cols), output, overwrite=overwrite)
        click.echo(f"wrote {output} ({len(seeds)} samples, {G.family} {G.resolution}px, psi={truncation_psi})")

    _run(go)


def _check_writable(folder: Path) -> None:
    """GenpriorError unless ``folder`` (or the closest existing parent) can be written, before any work."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise GenpriorError(f"-o {folder}: cannot write there ({probe} is not a writable folder)")


@main.command()
@click.argument("inputs", type=click.Path(exists=True, path_type=Path))
@click.option("--generator", "-g", required=True, help="Model name (see `genprior models`) or checkpoint path.")
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--method", type=click.Choice(METHODS), default="map", show_default=True,
              help="BRGM MAP, BRGM variational posterior (vi), latent MCMC (mcmc), or BIGPrior (mGANprior inversion "
                   "+ fusion net).")
@click.option("--fusion", type=click.Path(exists=True, path_type=Path), default=None,
              help="BIGPrior: a fusion net (run folder, .safetensors, official .pth); default: the zoo's for the "
                   "generator and task.")
@click.option("--factor", type=int, default=4, show_default=True, help="Super-resolution factor (2..64).")
@click.option("--kernel", type=click.Choice(KERNELS), default=None,
              help="Super-resolution kernel; default: auto (estimated) for a real low-resolution input, box with "
                   "--simulate (bicubic_noaa = BRGM PyTorch parity).")
@click.option("--mask", default="center", show_default=True,
              help="In-painting mask: FILE (black = hole, white = observed), center, brgm-0..6, boxes, pixels:0.5.")
@click.option("--sigma", type=float, default=None,
              help="Noise std of the observation, [0, 1] units; default: estimated for denoise, 0 otherwise.")
@click.option("--samples", type=int, default=16, show_default=True, help="Posterior samples (vi).")
@click.option("--steps", type=int, default=None, help="Main optimisation steps (default: the method's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--extension", type=click.Choice(["none", "tune", "ilo"]), default=None,
              help="map/vi range extension after the latent fit (default: the method's).")
@click.option("--consistency", type=click.Choice(["soft", "hard", "none", "sample"]), default=None,
              help="map/vi data consistency (default: soft for map, sample for vi).")
@click.option("--optimize-noise", is_flag=True, help="map/vi on StyleGAN2: fit the noise maps too (NVIDIA's penalty).")
@click.option("--perceptual", type=click.Choice(["auto", "lpips", "vgg"]), default="auto", show_default=True,
              help="map/vi perceptual distance: exact LPIPS (needs vgg16.pt in the cache), uniform VGG16, or auto.")
@click.option("--simulate", is_flag=True,
              help="Inputs are clean images: degrade them with the task's forward model and report metrics.")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="vi/mcmc: a `genprior calibrate` file; writes lower.png / upper.png, the calibrated interval.")
@click.option("--workers", type=int, default=1, show_default=True, help="Folders: parallel workers.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Folders: local worker processes, or a Ray cluster (extra genprior[ray]).")
@click.option("--address", default=None, help="--engine ray: the cluster address (default: start Ray here).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--threads", type=int, default=None, help="CPU threads (default: torch's; 1 on a busy machine).")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder; one sub-folder per image.")
@click.option("--overwrite", is_flag=True, help="Replace existing result folders.")
@SETTINGS
def restore(inputs, generator, task, method, fusion, factor, kernel, mask, sigma, samples, steps, seed, extension,
            consistency, optimize_noise, perceptual, simulate, calibration, workers, engine, address, device, threads,
            output, overwrite, settings) -> None:  # noqa: ANN001
    """Restore IMAGE_OR_DIR with a generative prior; a folder restores every image (resumable)."""
    from .restore import RestoreOptions, RestoreJob, list_images, load_mask

    def go() -> None:
        opts = RestoreOptions(task=task, method=method, factor=factor, kernel=kernel, mask=mask, sigma=sigma,
                              simulate=simulate, samples=samples, steps=steps, seed=seed,
                              fusion=str(fusion) if fusion else None, optimize_noise=optimize_noise,
                              perceptual=perceptual, extension=extension, consistency=consistency,
                              calibration=str(calibration) if calibration else None,
                              method_options=dict(settings)).check()
        if consistency == "sample" and method not in ("vi", "mcmc"):
            raise GenpriorError("--consistency sample is for --method vi or mcmc (it draws the residual per sample)")
        if workers < 1:
            raise GenpriorError(f"--workers must be >= 1, got {workers}")
        if threads is not None:
            if threads < 1:
                raise GenpriorError(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        files = list_images(inputs)
        _check_writable(output)
        from .io.medical import is_volume

        if inputs.is_dir() and not is_volume(inputs):
            _restore_folder(RestoreJob(generator, opts, device), files, output, workers, engine, address, overwrite)
            return
        target = output / files[0].stem
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
        from .io.checkpoints import load_generator
        from .restore import restore as restore_one

        G = load_generator(generator, device=device)
        if task == "inpaint":
            load_mask(mask, G.resolution, seed)  # a bad mask stops here, before any work
        if is_volume(files[0]):
            from .restore_volume import restore_volume

            summary = restore_volume(files[0], G, opts, target)
            click.echo(f"{files[0].name}: {summary['slices']} slices restored; wrote {summary['written']}")
            return
        opts.progress = True
        res = restore_one(files[0], G, opts)
        for line in res.config.get("notes", []):
            notice(line)
        res.save(target, overwrite=overwrite)
        click.echo(f"{files[0].name}: wrote {target}{_metrics_note(res)}")

    _run(go)


def _metrics_note(res) -> str:  # noqa: ANN001
    m = res.history.get("metrics")
    if not m:
        return ""
    base = {"superres": "bicubic", "inpaint": "mean fill", "denoise": "observation", "colorize": "grey"}[
        res.config["restore_options"]["task"]]
    return (f"  PSNR {m['restored']['psnr']:.2f} dB, SSIM {m['restored']['ssim']:.3f} ({base} "
            f"{m['baseline']['psnr']:.2f} dB / {m['baseline']['ssim']:.3f})")


def _restore_folder(job, files, output, workers, engine, address, overwrite) -> None:  # noqa: ANN001
    from .batch import run_batch

    report = run_batch(job, files, output, engine=engine, workers=workers, address=address, overwrite=overwrite)
    click.echo(f"{report.restored} restored, {report.skipped} already done, {report.failed} failed "
               f"({report.seconds:.0f} s); {output / 'summary.csv'}")
    if report.failed:
        click.echo(f"error: {report.failed} of {report.total} inputs failed; see {output / 'failures.jsonl'}", err=True)
        sys.exit(1)


@main.command()
@click.argument("images", type=click.Path(exists=True, path_type=Path))
@click.option("--generator", "-g", required=True, help="Model name (see `genprior models`) or checkpoint path.")
@click.option("--task", type=click.Choice(TASKS), required=True)
@click.option("--method", type=click.Choice(["vi", "mcmc"]), default="vi", show_default=True)
@click.option("--factor", type=int, default=4, show_default=True, help="Super-resolution factor (2..64).")
@click.option("--kernel", type=click.Choice([k for k in KERNELS if k != "auto"]), default="box", show_default=True,
              help="Super-resolution kernel the calibration images are degraded with.")
@click.option("--mask", default="center", show_default=True, help="In-painting mask (as for restore).")
@click.option("--sigma", type=float, default=None, help="Noise std of the degradation (default 0; denoise needs it).")
@click.option("--samples", type=int, default=16, show_default=True, help="Posterior samples per image.")
@click.option("--steps", type=int, default=None, help="Main steps of the method (default: the method's).")
@click.option("--alpha", type=float, default=0.1, show_default=True, help="Largest share of pixels outside.")
@click.option("--delta", type=float, default=0.1, show_default=True, help="RCPS: chance the guarantee fails.")
@click.option("--bound", type=click.Choice(["rcps", "crc"]), default="rcps", show_default=True,
              help="rcps: risk <= alpha with probability 1 - delta; crc: expected risk <= alpha.")
@click.option("--interval", "kind", type=click.Choice(["std", "quantile"]), default="std", show_default=True,
              help="The spread that is scaled: the per-pixel std, or the samples' 5-95 % quantiles.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="calib.json")
@click.option("--overwrite", is_flag=True)
@SETTINGS
def calibrate(images, generator, task, method, factor, kernel, mask, sigma, samples, steps, alpha, delta, bound, kind,
              seed, device, output, overwrite, settings) -> None:  # noqa: ANN001
    """Calibrate per-pixel intervals on clean IMAGES (a folder): degrade, restore, pick the scale λ (conformal)."""
    from .calibration import calibrate as run_calibration
    from .io.checkpoints import load_generator
    from .restore import RestoreOptions, list_images

    def go() -> None:
        if output.exists() and not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
        if task == "denoise" and not sigma:
            raise GenpriorError("denoising calibration needs the noise level: pass --sigma")
        opts = RestoreOptions(task=task, method=method, factor=factor, kernel=kernel, mask=mask,
                              sigma=sigma if sigma is not None else 0.0, simulate=True, samples=samples, steps=steps,
                              seed=seed, method_options=dict(settings)).check()
        files = list_images(images)
        _check_writable(output.parent)
        G = load_generator(generator, device=device)
        cal = run_calibration(files, G, opts, generator=str(generator), alpha=alpha, delta=delta, kind=kind,
                              bound=bound, log=notice)
        cal.save(output, overwrite=overwrite)
        click.echo(f"wrote {output}: lambda {cal.lam:.3f} ({cal.kind}); {cal.guarantee()}; raw coverage "
                   f"{cal.raw_coverage:.3f}, calibrated miscoverage on the calibration images {cal.risk:.3f}")

    _run(go)


@main.command()
@click.argument("result", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(result) -> None:  # noqa: ANN001
    """Rewrite a result folder's report (report.png, index.html) from its saved state."""
    from .report import write_report

    _run(lambda: click.echo(f"wrote {write_report(result)}"))


class _Batch(click.ParamType):
    name = "batch"

    def convert(self, value, param, ctx):  # noqa: ANN001
        if isinstance(value, int) or value == "auto":
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a whole number nor 'auto'", param, ctx)


@main.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--resolution", type=int, required=True, help="Power of two; images are fitted to it.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Grey or RGB (default: the data's).")
@click.option("--kimg", type=float, required=True, help="Train until this many thousand real images were shown.")
@click.option("--recipe", type=click.Choice(["stylegan2", "projected", "vision-aided"]), default="stylegan2",
              show_default=True,
              help="stylegan2: its discriminator, logistic loss, lazy R1; projected: a discriminator on frozen "
                   "VGG16 features, hinge loss; vision-aided: StyleGAN2's discriminator plus heads on frozen VGG16 "
                   "features (the shipped faces64 was fine-tuned so).")
@click.option("--init-generator", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start a new run's generator from this native generator file (fine-tuning; D starts fresh).")
@click.option("--batch", type=_Batch(), default=16, show_default=True,
              help="Images per step, or 'auto' (fills the GPU's free memory; 16 on a CPU).")
@click.option("--batch-gpu", type=int, default=None,
              help="Images per forward pass and process (default: all of its share); gradients accumulate.")
@click.option("--g-channel-base", type=int, default=4096, show_default=True)
@click.option("--g-channel-max", type=int, default=128, show_default=True)
@click.option("--d-channel-base", type=int, default=4096, show_default=True)
@click.option("--d-channel-max", type=int, default=128, show_default=True)
@click.option("--z-dim", type=int, default=128, show_default=True)
@click.option("--w-dim", type=int, default=128, show_default=True)
@click.option("--mapping-layers", type=int, default=4, show_default=True)
@click.option("--lr", type=float, default=None, help="Learning rate (default: 0.0025 stylegan2, 0.0002 projected).")
@click.option("--r1-gamma", type=float, default=None, help="R1 weight (default: from the resolution).")
@click.option("--ema-kimg", type=float, default=None, help="EMA half-life in kimg (default: from the batch).")
@click.option("--augment", type=click.Choice(["diffaugment", "ada", "none"]), default="diffaugment",
              show_default=True, help="ada: DiffAugment's ops each with a probability tuned as StyleGAN2-ADA.")
@click.option("--ada-target", type=float, default=0.6, show_default=True, help="ADA's target for E[sign(D(real))].")
@click.option("--ada-kimg", type=float, default=500.0, show_default=True,
              help="ADA: kimg over which the probability can move from 0 to 1.")
@click.option("--mirror", is_flag=True, help="Add horizontal flips of the data.")
@click.option("--snapshot-kimg", type=float, default=2.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--holdout", type=int, default=0, show_default=True, help="Keep the last N images (sorted) out.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N, mps (under torchrun each process takes its own GPU).")
@click.option("--num-fp16-res", type=int, default=None,
              help="Blocks of G and D in float16 on CUDA (default: 4 there, 0 elsewhere).")
@click.option("--channels-last", is_flag=True, help="Channels-last memory layout for weights and activations.")
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads.")
@click.option("--max-minutes", type=float, default=None,
              help="Stop after this much wall time with a snapshot (run the same command to go on).")
@click.option("--progress-sec", type=float, default=60.0, show_default=True, help="Seconds between progress lines.")
def train(data, out_dir, channels, max_minutes, **kw) -> None:  # noqa: ANN001
    """Train (or resume) a GAN on DATA (image folder, .zip, or MNIST idx file); snapshots go to OUT_DIR.

    Several GPUs or machines: torchrun --nproc_per_node N -m genprior.training DATA OUT_DIR ..."""
    from .progress import one_line_warnings
    from .training import loop

    def go() -> None:
        try:
            with one_line_warnings():
                loop.train(data, out_dir, channels=int(channels) if channels else None, num_threads=kw.pop("threads"),
                           max_sec=None if max_minutes is None else max_minutes * 60, **kw)
        except KeyboardInterrupt:
            click.echo("interrupted: a snapshot was saved; run the same command to resume", err=True)
            sys.exit(130)

    _run(go)


@main.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--generator", "-g", required=True, help="Model name (see `genprior models`) or checkpoint path.")
@click.option("--n", "num", type=int, default=500, show_default=True, help="Real images and samples compared.")
@click.option("--holdout", type=int, default=0, show_default=True,
              help="Use the last N images of DATA (as `genprior train --holdout N` kept them out); 0: all of DATA.")
@click.option("--seed", type=int, default=123, show_default=True, help="First sample seed; also picks the reals.")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--k", type=int, default=3, show_default=True, help="Neighbours for precision / recall.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="JSON report.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def evaluate(data, generator, num, holdout, seed, truncation_psi, k, output, overwrite) -> None:  # noqa: ANN001
    """Score a generator against real images in DATA: FD-VGG, precision and recall (VGG16 features), and FID
    when its Inception weights are cached (`genprior models fetch inception-fid`)."""
    from .io.atomic import atomic_path
    from .io.checkpoints import load_generator
    from .training.data import load_dataset, split_holdout
    from .metrics.generative import cached_fid_inception, evaluate_generator

    def go() -> None:
        if output is not None and output.exists() and not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
        G = load_generator(generator, device="cpu")
        real = load_dataset(data, resolution=G.resolution, channels=G.channels, log=None)
        if holdout:
            real = split_holdout(real, holdout)[1]
        need = max(2, k + 1)  # FD needs 2 images per set; precision/recall need more than k
        where = f"the last {holdout} images of DATA (--holdout)" if holdout else "DATA"
        if real.shape[0] < need:
            raise GenpriorError(f"{where} holds {real.shape[0]} image(s); evaluate needs at least {need} "
                                f"(FD-VGG needs 2, precision/recall with --k {k} need k + 1): add images to DATA"
                                f"{' or raise --holdout' if holdout else ''}, or lower --k")
        if num < need:
            raise GenpriorError(f"--n {num} is too small: it must be between 2 and {real.shape[0]} for FD-VGG and "
                                f"above --k ({k}) for precision/recall; use --n {need} or more, or a lower --k")
        order = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(seed))
        inception = cached_fid_inception()
        report = evaluate_generator(G, real[order], min(num, real.shape[0]), seed=seed, truncation_psi=truncation_psi,
                                    k=k, inception=inception)
        report.update(generator=str(generator), data=str(data), holdout=holdout)
        fid = (f"FID {report['fid']:.2f}" if inception is not None
               else "FID: no Inception weights cached (`genprior models fetch inception-fid`)")
        click.echo(f"FD-VGG {report['fd_vgg']:.1f}  precision {report['precision']:.3f}  "
                   f"recall {report['recall']:.3f}  ({report['n']} samples vs {report['n']} real images); {fid}")
        if output is not None:
            with atomic_path(output, overwrite=overwrite) as tmp:
                tmp.write_text(json.dumps(report, indent=2) + "\n")
            click.echo(f"wrote {output}")

    _run(go)


@main.group()
def bigprior() -> None:
    """Train and test BIGPrior fusion nets on (observation, GAN estimate, truth) folders."""


_TRIPLES = [
    click.option("--observations", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                 help="Degraded inputs (grey for colorization, .npy allowed for denoising)."),
    click.option("--estimates", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                 help="GAN estimates g (e.g. mGANprior inversions), same file stems."),
    click.option("--truths", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                 help="Ground truth, same stems (needed to train; optional to test)."),
    click.option("--masks", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                 help="In-painting masks, same stems: white = observed, black = hole (as restore --mask; the "
                      "official BIGPrior mask PNGs are white on the hole: invert them)."),
    click.option("--task", type=click.Choice(["colorize", "inpaint", "denoise"]), required=True),
    click.option("--stems", default=None, help="Images to use, e.g. '0-249' (default: all)."),
]


def _triples(fn):  # noqa: ANN001, ANN202
    for opt in reversed(_TRIPLES):
        fn = opt(fn)
    return fn


def _dataset(observations, estimates, truths, masks, task, stems, **kw):  # noqa: ANN001, ANN202
    from .methods.fusion_data import FusionTriples

    return FusionTriples(observations, estimates, truths, task=task, masks=masks,
                         stems=parse_range(stems) if stems else None, **kw)


@bigprior.command("train")
@_triples
@click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Experiments folder; runs go to OUT/<name>_<id> (never overwritten).")
@click.option("--name", default=None, help="Experiment name (default: the task).")
@click.option("--net", type=click.Choice(["dncnn", "bounded"]), default="bounded", show_default=True,
              help="dncnn: the official DnCNN-17; bounded: genprior's φ in [0, 1] that also sees g.")
@click.option("--epochs", type=int, default=25, show_default=True)
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=0.01, show_default=True)
@click.option("--phi-weight", type=float, default=1e-5, show_default=True)
@click.option("--crop", type=int, default=None, help="Random square crops of this size (with flips).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
def bigprior_train(observations, estimates, truths, masks, task, stems, out_root, name, net, epochs, batch, lr,
                   phi_weight, crop, seed, device) -> None:  # noqa: ANN001
    """Train a fusion net (resumes an unfinished run of the same name and arguments)."""
    from .devices import resolve_device
    from .methods.fusion_train import train_fusion

    def go() -> None:
        if truths is None:
            raise GenpriorError("training needs --truths")
        data = _dataset(observations, estimates, truths, masks, task, stems, crop=crop, augment=crop is not None)
        run = train_fusion(data, out_root, net=net, task=task, name=name, epochs=epochs, batch=batch, lr=lr,
                           phi_weight=phi_weight, seed=seed, device=resolve_device(device))
        click.echo(f"trained: {run}")

    _run(go)


@bigprior.command("test")
@_triples
@click.option("--model", type=click.Path(exists=True, path_type=Path), required=True,
              help="A run folder, a .safetensors net, or an official net_24.pth.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--overwrite", is_flag=True)
def bigprior_test(observations, estimates, truths, masks, task, stems, model, output, overwrite) -> None:  # noqa: ANN001
    """Write fused outputs, φ maps (PNG and .npy) and per-image metrics."""
    from .methods.fusion import FusionNet
    from .methods.fusion_test import test_fusion

    def go() -> None:
        net = FusionNet.load(model, task=task)
        metrics = test_fusion(net, _dataset(observations, estimates, truths, masks, task, stems), output,
                              overwrite=overwrite)
        means = ", ".join(f"{k} {v:.4g}" for k, v in metrics["mean"].items())
        click.echo(f"wrote {output} ({len(metrics['per_image'])} images; mean {means})")

    _run(go)


@main.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
def convert(src, dst, overwrite) -> None:  # noqa: ANN001
    """Convert a checkpoint (NVlabs/TF .pkl, rosinality .pt, state dict) to genprior's safetensors format."""
    from .io.checkpoints import load_generator, save_native

    def go() -> None:
        if src.resolve() == dst.resolve():
            raise FileExistsError("SRC and DST are the same file")
        G = load_generator(src, device="cpu")
        save_native(G, dst, overwrite=overwrite, extra={"converted_from": src.name})
        click.echo(f"wrote {dst}: {G.family} {G.resolution}px, {G.channels} channel(s), config {json.dumps(G.config)}")

    _run(go)


@main.group()
def models() -> None:
    """List or fetch named models."""


@models.command("list")
@click.option("--kind", type=click.Choice(["generator", "perceptual", "fusion", "metric"]), default=None)
def models_list(kind) -> None:  # noqa: ANN001
    """Show the registry: name, kind, format, status, licence (wrapped to the terminal, never cut)."""
    import shutil
    import textwrap

    from .io import zoo

    rows = [("NAME", "KIND", "FORMAT", "STATUS", "LICENCE")]
    for m in zoo.list_models(kind):
        status = "cached" if zoo.cache_path(m).exists() else ("packaged" if m.packaged else "")
        rows.append((m.name, m.kind, m.format, status, m.license))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    indent = sum(widths) + 2 * len(widths)
    columns = shutil.get_terminal_size(fallback=(0, 0)).columns  # 0: not a terminal, no COLUMNS: print whole
    below = 0 < columns < indent + 30  # too narrow for a licence column: each licence goes under its row
    pad = 4 if below else indent
    for *cells, licence in rows:
        lines = [licence]
        if columns:
            lines = textwrap.wrap(licence, max(columns - pad, 20), break_long_words=False, break_on_hyphens=False)
        head = "  ".join(c.ljust(w) for c, w in zip(cells, widths))
        if below:
            click.echo(head.rstrip())
        else:
            click.echo(f"{head}  {lines.pop(0)}")
        for more in lines:
            click.echo(" " * pad + more)


@models.command("fetch")
@click.argument("name")
@click.option("--offline", is_flag=True, help="Never touch the network.")
def models_fetch(name, offline) -> None:  # noqa: ANN001
    """Download NAME into the cache (or find it locally) and print its path."""
    from .io import zoo

    _run(lambda: click.echo(str(zoo.fetch(name, offline=offline or None))))


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True, help="0: any free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; only this computer can reach the default.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads (default: torch's).")
@click.option("--log", is_flag=True, help="Print every HTTP request.")
def serve(port, host, device, threads, log) -> None:  # noqa: ANN001
    """A local web page to restore an image: upload, choose model, task and options, watch, download."""
    from .web import serve as run_server

    if threads:
        torch.set_num_threads(threads)

    def ready(server) -> None:  # noqa: ANN001
        if host not in ("127.0.0.1", "localhost", "::1"):
            notice(f"listening on {host}: anyone who can reach this address can use the page and this machine")
        click.echo(f"genprior: serving the page on {server.url} (Ctrl-C to stop)")

    def go() -> None:
        try:
            run_server(host, port, device=device, log=log, on_ready=ready)
        except OSError as exc:
            raise GenpriorError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port "
                                "or --host") from None
        except KeyboardInterrupt:
            click.echo("stopped")

    _run(go)


if __name__ == "__main__":  # pragma: no cover
    main()
