"""One restoration end to end: an image (file or tensor) -> forward model -> method -> baselines and metrics.

``genprior.restore(source, G, task=..., **options)`` returns exactly what ``genprior restore`` writes: a
`Reconstruction` whose ``mean`` is the restoration, with ``images`` holding the observation's baselines
(``pseudo_inverse``; ``baseline``: bicubic for super-resolution, mean fill for in-painting, the observation
for denoising, grey for colorization), ``merged`` for in-painting, ``truth`` when known, and
``history["metrics"]`` (PSNR / SSIM of each against the truth). `RestoreOptions` holds and checks every
option before anything heavy runs; `RestoreJob` restores files in batch workers (`genprior.batch`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .errors import GenpriorError
from .generators import Generator
from .io.images import IMAGE_SUFFIXES, read_image_info
from .physics import (Colorization, Denoising, Inpainting, Physics, SuperResolution, estimate_sigma, make_mask,
                       mask_from_file)
from .physics.superres import KERNELS
from .result import Reconstruction

TASKS = ("superres", "inpaint", "denoise", "colorize")
METHODS = ("map", "vi", "mcmc", "bigprior")


@dataclass
class RestoreOptions:
    """Every option of one restoration (the CLI's flags). Checked by `check` before any heavy work.

    sigma: the observation's noise std in [0, 1] units; None estimates it from the observation (denoising)
    or takes 0 (other tasks). kernel: super-resolution kernel; None is ``auto`` (estimated) for a real
    low-resolution input and ``box`` with ``simulate``. steps: the method's main steps (None: its default).
    """

    task: str
    method: str = "map"
    factor: int = 4
    kernel: str | None = None
    mask: str = "center"
    sigma: float | None = None
    simulate: bool = False
    samples: int = 16
    steps: int | None = None
    seed: int = 0
    fusion: str | None = None
    optimize_noise: bool = False
    perceptual: str = "auto"
    extension: str | None = None  # map / vi: none, tune, ilo (None: the method's default)
    consistency: str | None = None  # map: soft, hard, none; vi / mcmc: sample, soft, hard, none
    calibration: str | None = None  # a `genprior calibrate` file: writes the calibrated interval (vi / mcmc)
    progress: bool = False
    method_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "RestoreOptions":
        """Raise GenpriorError naming the first bad option; returns self."""
        if self.task not in TASKS:
            raise GenpriorError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        if self.method not in METHODS:
            raise GenpriorError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise GenpriorError(f"--sigma must be a finite number >= 0, got {self.sigma}")
        if self.steps is not None and (isinstance(self.steps, bool) or self.steps < 1):
            raise GenpriorError(f"--steps must be >= 1, got {self.steps}")
        if self.method in ("vi", "mcmc") and self.samples < 2:
            raise GenpriorError(f"--samples must be >= 2 for a posterior with samples, got {self.samples}")
        if self.calibration is not None and self.method not in ("vi", "mcmc"):
            raise GenpriorError(f"--calibration needs a method with samples (vi or mcmc), not {self.method}")
        if self.kernel is not None and self.kernel not in KERNELS:
            raise GenpriorError(f"unknown kernel {self.kernel!r}; choose from {', '.join(KERNELS)}")
        if self.simulate and self.kernel == "auto":
            raise GenpriorError("--kernel auto estimates the kernel of a real low-resolution input; with "
                                "--simulate give the kernel to degrade with (e.g. box)")
        if self.method == "bigprior" and self.task == "superres":
            raise GenpriorError("BIGPrior handles colorize, inpaint and denoise, not superres")
        if self.task == "superres" and not 2 <= self.factor <= 64:
            raise GenpriorError(f"--factor must be in 2..64, got {self.factor}")
        return self

    @property
    def effective_kernel(self) -> str:
        return self.kernel or ("box" if self.simulate else "auto")


VOLUME_SUFFIXES = (".dcm", ".nii", ".nii.gz")


def list_images(path: str | Path) -> list[Path]:
    """The inputs at ``path``: a file or a DICOM series folder itself, or a folder's images and scans (sorted)."""
    from .io.medical import is_volume

    path = Path(path)
    if path.is_dir() and not is_volume(path):
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES or p.name.lower().endswith(VOLUME_SUFFIXES)
                       or (p.is_dir() and is_volume(p)))
        if not files:
            raise GenpriorError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) or scans in this folder")
        return files
    if not path.exists():
        raise GenpriorError(f"{path}: no such file or folder")
    return [path]


def fit_square(x: torch.Tensor, size: int, *, what: str = "image") -> tuple[torch.Tensor, list[str]]:
    """Centre-crop (1, C, H, W) to a square and resize to ``size`` (antialiased bicubic); (image, notes)."""
    notes = []
    _, _, h, w = x.shape
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        notes.append(f"{what}: {w}x{h} is not square; centre-cropped to {s}x{s}")
        x = x[:, :, top : top + s, left : left + s]
    if x.shape[-1] != size:
        notes.append(f"{what}: resized from {x.shape[-1]}x{x.shape[-1]} to {size}x{size}")
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return x, notes


def make_physics(opts: RestoreOptions, G: Generator, sigma: float) -> Physics:
    """The forward model of ``opts.task`` on the generator's images (R x R, G.channels)."""
    task = opts.task
    if task == "superres":
        if G.resolution % opts.factor:
            raise GenpriorError(f"the super-resolution factor {opts.factor} does not divide the generator's "
                                f"resolution {G.resolution}")
        return SuperResolution(opts.factor, opts.effective_kernel, sigma=sigma)
    if task == "inpaint":
        return Inpainting(load_mask(opts.mask, G.resolution, opts.seed), sigma=sigma)
    if task == "denoise":
        return Denoising(sigma)
    if G.channels != 3:
        raise GenpriorError("colorization needs a colour generator; this one has 1 channel")
    return Colorization(sigma=sigma)


def load_mask(spec: str, size: int, seed: int = 0) -> torch.Tensor:
    """An in-painting mask (bool (H, W), True = observed) from a spec or file, checked: right size, a hole,
    something observed."""
    try:
        mask = mask_from_file(spec) if Path(spec).is_file() else make_mask(spec, size, seed=seed)  # files: as they are
    except (ValueError, OSError) as exc:
        raise GenpriorError(f"--mask {spec!r}: {exc}") from None
    if tuple(mask.shape[-2:]) != (size, size):
        raise GenpriorError(f"--mask {spec}: the mask is {mask.shape[-1]}x{mask.shape[-2]} but the generator's images "
                            f"are {size}x{size}; give a mask of that size")
    if bool(mask.all()):
        raise GenpriorError(f"--mask {spec}: the mask has no hole (every pixel is observed; black marks the hole)")
    if not bool(mask.any()):
        raise GenpriorError(f"--mask {spec}: the mask is all hole (no pixel is observed; white marks what is seen)")
    return mask


def read_source(path: str | Path, channels: int) -> tuple[torch.Tensor, list[str]]:
    """(image (1, C, H, W) in [0, 1], notes on the conversions made) from a file."""
    info = read_image_info(path, channels)
    return info.image, [f"{Path(path).name}: {c}" for c in info.conversions]


def observation_and_truth(source: str | Path | torch.Tensor, G: Generator, opts: RestoreOptions
                          ) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """(y on the forward model's grid, the truth or None, notes). With ``simulate`` the source is a clean image,
    fitted to the generator's size (degradation later); else it is the observation itself."""
    name = str(source) if not isinstance(source, torch.Tensor) else "image"
    notes: list[str] = []
    channels = 3 if opts.task == "colorize" and not opts.simulate else G.channels
    if isinstance(source, torch.Tensor):
        x = source.detach().float().cpu()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[0] != 1:
            raise GenpriorError(f"give one image (1, C, H, W), got shape {tuple(source.shape)}")
    else:
        x, notes = read_source(source, channels)
    if opts.simulate:
        if x.shape[1] != G.channels:
            raise GenpriorError(f"{name}: {x.shape[1]} channel(s), the generator makes {G.channels}")
        x, more = fit_square(x, G.resolution, what=name)
        return x, x, notes + more
    if opts.task == "colorize":
        x, more = fit_square(x, G.resolution, what=name)
        grey = Colorization().A(x) if x.shape[1] == 3 else x
        return grey, None, notes + more
    size = G.resolution // opts.factor if opts.task == "superres" else G.resolution
    y, more = fit_square(x, size, what=name)
    return y, None, notes + more


def noise_level(opts: RestoreOptions, y: torch.Tensor) -> tuple[float, list[str]]:
    """The noise std to use: given, 0 for a non-denoising task, or estimated (denoising, none given)."""
    if opts.sigma is not None:
        return float(opts.sigma), []
    if opts.task != "denoise":
        return 0.0, []
    est = float(estimate_sigma(y).mean())
    if not est > 1e-4:
        raise GenpriorError("cannot estimate the noise level: the image is flat (no detail or noise); pass --sigma")
    return est, [f"estimated the noise level from the image: sigma = {est:.4f} (wavelet MAD); pass --sigma to set it"]


def build_method(opts: RestoreOptions, G: Generator, task_physics: Physics):
    """The configured method object for ``opts``; a bad setting in ``method_options`` is a GenpriorError."""
    try:
        return _build_method(opts, G)
    except TypeError as exc:  # an unknown setting name
        raise GenpriorError(f"--set: {str(exc).split('__init__() ')[-1]} for --method {opts.method}") from None
    except ValueError as exc:
        raise GenpriorError(f"--method {opts.method}: {exc}") from None


def _build_method(opts: RestoreOptions, G: Generator):
    from .methods import BIGPrior, BRGM, LatentMCMC, VariationalBRGM

    space = "w+" if G.w_dim is not None else "z"
    kw: dict[str, Any] = dict(opts.method_options)
    if opts.steps:
        kw["steps"] = opts.steps
    if opts.method in ("map", "vi", "mcmc"):
        kw.update(perceptual=opts.perceptual)
        if opts.method != "mcmc":
            kw["optimize_noise"] = opts.optimize_noise
        if opts.consistency:
            kw["consistency"] = opts.consistency
    if opts.method == "map":
        if opts.extension:
            kw["extension"] = opts.extension
        return BRGM(G, space=space, progress=opts.progress, **kw)
    if opts.method == "vi":
        kw["map"] = {**kw.get("map", {}), **({"extension": opts.extension} if opts.extension else {})}
        for key in [k for k in kw if k.startswith("map_") and k != "map_steps"]:  # e.g. --set map_tune_steps=20
            kw["map"][key[4:]] = kw.pop(key)
        return VariationalBRGM(G, space=space, num_samples=opts.samples, progress=opts.progress, **kw)
    if opts.method == "mcmc":
        kw["map"] = {**kw.get("map", {}), **({"extension": opts.extension} if opts.extension else {})}
        for key in [k for k in kw if k.startswith("map_") and k != "map_steps"]:
            kw["map"][key[4:]] = kw.pop(key)
        if "steps" in kw:
            kw["keep"] = kw.pop("steps")
        return LatentMCMC(G, space=space, num_samples=opts.samples, progress=opts.progress, **kw)
    from .io import zoo

    task = {"colorize": "colorize", "inpaint": "inpaint", "denoise": "denoise"}[opts.task]
    fusion = opts.fusion or zoo.default_fusion(G, opts.task)
    return BIGPrior.preset(G, task, fusion, progress=opts.progress, **kw)


def baselines(y: torch.Tensor, physics: Physics, opts: RestoreOptions) -> dict[str, torch.Tensor]:
    """The simple estimates shown beside a restoration: pseudo-inverse and the task's strongest simple one."""
    pinv = physics.A_dagger(y).clamp(0, 1)
    if opts.task == "superres":
        base = F.interpolate(y, scale_factor=opts.factor, mode="bicubic", align_corners=False).clamp(0, 1)
    else:
        base = pinv
    return {"pseudo_inverse": pinv, "baseline": base}


def restore(source: str | Path | torch.Tensor, G: Generator, options: RestoreOptions | None = None, *,
            callback: Callable[[Any], None] | None = None, **kw: Any) -> Reconstruction:
    """Restore one image; see the module docstring. ``options`` or keyword options of `RestoreOptions`;
    ``callback`` gets the method's `genprior.methods.base.Step` records, one per step."""
    from .metrics import psnr, ssim

    opts = (options or RestoreOptions(**kw)).check()
    calibration = None
    if opts.calibration is not None:
        from .calibration import Calibration, generator_hash, task_key

        calibration = Calibration.load(opts.calibration)
        calibration.check(generator_hash(G), task_key(opts), opts.method)
    y, truth, notes = observation_and_truth(source, G, opts)
    sigma, more = noise_level(opts, y) if not opts.simulate else (float(opts.sigma or 0.0), [])
    notes += more
    physics = make_physics(opts, G, sigma).to(G.device)
    if truth is not None:
        y = physics(truth.to(G.device), seed=opts.seed).cpu()
    method = build_method(opts, G, physics)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = method(y.to(G.device), physics, seed=opts.seed, callback=callback)
    notes += [str(w.message).splitlines()[0] for w in caught]
    y_dev = y.to(G.device)
    res.images.update({k: v.cpu() for k, v in baselines(y_dev, physics, opts).items()})
    if opts.task == "inpaint":
        m = physics.observed.float().cpu()
        res.images["merged"] = physics.A_dagger(y_dev).cpu() * m + res.mean * (1 - m)
    if calibration is not None:
        from .calibration import interval

        lower, upper = interval(res.mean, calibration.lam, calibration.kind, std=res.std, samples=res.samples)
        res.images["lower"], res.images["upper"] = lower.clamp(0, 1), upper.clamp(0, 1)
        res.config["calibration"] = {"file": str(opts.calibration), "alpha": calibration.alpha,
                                     "delta": calibration.delta, "lambda": calibration.lam, "kind": calibration.kind,
                                     "bound": calibration.bound, "guarantee": calibration.guarantee()}
    if truth is not None:
        res.images["truth"] = truth
        scored = {"restored": res.mean, **{k: res.images[k] for k in ("baseline", "pseudo_inverse")}}
        res.history["metrics"] = {k: {"psnr": float(psnr(v, truth)[0]), "ssim": float(ssim(v, truth)[0])}
                                  for k, v in scored.items()}
    res.config["input"] = str(source) if not isinstance(source, torch.Tensor) else "<tensor>"
    res.config["restore_options"] = {k: v for k, v in asdict(opts).items() if k != "progress"}
    res.config["notes"] = notes
    return res


@dataclass
class RestoreJob:
    """A `genprior.batch` job: restore files with one generator (loaded once per worker) and fixed options."""

    generator: str
    options: RestoreOptions
    device: str = "auto"

    def setup(self) -> None:
        from .io.checkpoints import load_generator

        self.options.check()
        self._G = load_generator(self.generator, device=self.device)

    def run_one(self, input_path: Path, out_dir: Path) -> dict[str, Any]:
        from .io.medical import is_volume

        if is_volume(input_path):
            from .restore_volume import restore_volume

            summary = restore_volume(input_path, self._G, self.options, out_dir)
            return {"slices": summary["slices"]}
        res = restore(input_path, self._G, self.options)
        res.save(out_dir, overwrite=True)
        metrics = res.history.get("metrics", {})
        return {f"{k}_{m}": v for k, d in metrics.items() for m, v in d.items()}
