"""What the page sends, checked: the restoration options (a query string) and the uploaded image (the body).

`parse_options(query)` turns ``model=...&task=...&factor=4...`` into (model name, `RestoreOptions`) or raises
`FormError` with one line naming the bad field; `save_upload(data, filename, folder)` writes the image and checks
that genprior can read it. Nothing here loads a model or runs a method, so bad input is answered at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs

from ..errors import GenpriorError
from ..io.images import IMAGE_SUFFIXES, read_image_info
from ..physics.superres import KERNELS
from ..restore import RestoreOptions

DEFAULT_MODEL = "genprior-faces64"
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_CALIBRATION_BYTES = 1024 * 1024
# Mask specs the page may ask for (`genprior.physics.make_mask`); never a path on the server's disk.
MASK_SPEC = re.compile(r"center(:\d*\.?\d+)?|brgm-?[0-6]|boxes(:\d+(-\d+)?)?|pixels(:\d*\.?\d+)?")
MASK_PRESETS = ("center", "center:0.4", *(f"brgm-{k}" for k in range(7)), "boxes", "pixels:0.5", "pixels:0.8")
EXTENSIONS = ("none", "tune", "ilo")
CONSISTENCIES = ("soft", "hard", "none", "sample")
FIELDS = ("model", "task", "method", "factor", "kernel", "mask", "sigma", "simulate", "samples", "steps", "seed",
          "extension", "consistency", "calibration", "filename")
_TRUE, _FALSE = {"1", "true", "on", "yes"}, {"", "0", "false", "off", "no"}


class FormError(GenpriorError):
    """A field of the form is wrong; the message is one line for the page."""


def generator_names() -> list[str]:
    from ..io import zoo

    return [m.name for m in zoo.list_models("generator")]


def _int(fields: dict[str, str], name: str, default: int | None) -> int | None:
    text = fields.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise FormError(f"{name} must be a whole number, got {text!r}") from None


def _choice(fields: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    text = fields.get(name, "").strip()
    if not text:
        return None
    if text not in choices:
        raise FormError(f"unknown {name} {text!r}; choose from {', '.join(choices)}")
    return text


def parse_options(query: str, calibrations: Path | None = None) -> tuple[str, RestoreOptions, str]:
    """(model name, checked options, upload file name) from the page's query string; FormError if bad.

    ``calibration`` is the id `save_calibration` gave for a file in the folder ``calibrations``."""
    raw = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise FormError(f"unknown option {unknown[0]!r}; the page sends {', '.join(FIELDS)}")
    fields = {k: v[-1] for k, v in raw.items()}
    model = fields.get("model", "").strip() or DEFAULT_MODEL
    names = generator_names()
    if model not in names:
        raise FormError(f"unknown model {model!r}; choose one of the zoo's generators: {', '.join(names)}")
    task = fields.get("task", "").strip()
    if not task:
        raise FormError("choose a task (superres, inpaint, denoise or colorize)")
    sigma_text = fields.get("sigma", "").strip()
    try:
        sigma = float(sigma_text) if sigma_text else None
    except ValueError:
        raise FormError(f"sigma must be a number (the noise std in [0, 1] units) or empty, got {sigma_text!r}") \
            from None
    simulate = fields.get("simulate", "").strip().lower()
    if simulate not in _TRUE | _FALSE:
        raise FormError(f"simulate must be on or off, got {simulate!r}")
    mask = fields.get("mask", "").strip() or "center"
    if not MASK_SPEC.fullmatch(mask):
        raise FormError(f"unknown mask {mask!r}; choose center[:fraction], brgm-0..brgm-6, boxes[:n], "
                        "pixels[:dropped fraction]")
    calibration = fields.get("calibration", "").strip() or None
    if calibration is not None:
        path = calibrations / f"{calibration}.json" if calibrations and re.fullmatch(r"[0-9a-f]{12}", calibration) \
            else None
        if path is None or not path.is_file():
            raise FormError(f"unknown calibration {calibration!r}; upload the calibration file again")
        calibration = str(path)
    opts = RestoreOptions(task=task, method=fields.get("method", "").strip() or "map",
                          factor=_int(fields, "factor", 4), kernel=_choice(fields, "kernel", KERNELS), mask=mask,
                          sigma=sigma, simulate=simulate in _TRUE, samples=_int(fields, "samples", 16),
                          steps=_int(fields, "steps", None), seed=_int(fields, "seed", 0),
                          extension=_choice(fields, "extension", EXTENSIONS),
                          consistency=_choice(fields, "consistency", CONSISTENCIES), calibration=calibration)
    try:
        opts.check()
    except GenpriorError as exc:
        raise FormError(str(exc).replace("--", "")) from None  # the page has fields, not flags
    if opts.consistency == "sample" and opts.method not in ("vi", "mcmc"):
        raise FormError("consistency 'sample' is for the methods vi and mcmc (it draws the residual per sample)")
    if opts.method == "bigprior" and opts.extension:
        raise FormError("extension is for the methods map, vi and mcmc, not bigprior")
    return model, opts, fields.get("filename", "").strip()


def safe_name(filename: str) -> str:
    """The upload's base name with only letters, digits, '.', '-' and '_' (never a path)."""
    name = Path(filename.replace("\\", "/")).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name or "upload"


def save_upload(data: bytes, filename: str, folder: Path) -> Path:
    """Write the uploaded image into ``folder`` and check genprior can read it -> its path; FormError if not."""
    name = safe_name(filename or "upload")
    if not data:
        raise FormError("no image: choose an image file to upload")
    if len(data) > MAX_UPLOAD_BYTES:
        raise FormError(f"{name}: {len(data) / 2**20:.0f} MiB is over the {MAX_UPLOAD_BYTES // 2**20} MiB limit")
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        raise FormError(f"{name} is not an image genprior reads; upload one of {', '.join(IMAGE_SUFFIXES)}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    try:
        read_image_info(path)
    except GenpriorError as exc:
        raise FormError(str(exc).replace(str(path), name)) from None
    return path


def save_calibration(data: bytes, folder: Path) -> tuple[str, str]:
    """Keep an uploaded `genprior calibrate` file in ``folder`` -> (its id, its guarantee); FormError if bad."""
    import uuid

    from ..calibration import Calibration

    if not data:
        raise FormError("no calibration file: choose the JSON file `genprior calibrate` wrote")
    if len(data) > MAX_CALIBRATION_BYTES:
        raise FormError(f"the calibration file is over {MAX_CALIBRATION_BYTES // 1024} KiB; it is not one "
                        "`genprior calibrate` wrote")
    folder.mkdir(parents=True, exist_ok=True)
    cal_id = uuid.uuid4().hex[:12]
    path = folder / f"{cal_id}.json"
    path.write_bytes(data)
    try:
        cal = Calibration.load(path)
    except (GenpriorError, UnicodeDecodeError) as exc:
        path.unlink()
        reason = str(exc).replace(f"{path}: ", "") if isinstance(exc, GenpriorError) else "not UTF-8 text"
        raise FormError(f"the calibration file: {reason}") from None
    return cal_id, f"{cal.method}, {cal.task_options.get('task')}: {cal.guarantee()}"
