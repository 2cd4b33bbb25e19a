"""The model zoo: named model files, where to find them, and a download-and-cache that never trusts a bad file.

`fetch(name)` looks for a model file in this order and returns the first good one:

1. the file shipped inside the package (``genprior/models/<filename>``, entries with ``packaged=True``);
2. the cache, ``genprior.paths.cache_dir() / "models" / <filename>``;
3. the entry's ``search`` paths under the shared folder (``genprior.paths.shared_dir()``), used in place;
4. a download from each of the entry's URLs in turn, unless offline (``GENPRIOR_OFFLINE=1``).

A file whose sha256 differs from the recorded one is reported and skipped, never used. An entry without a
recorded sha256 accepts its first download and warns with the hash (trust on first use).
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from .. import paths
from ..errors import DownloadError, GenpriorError

__all__ = [
    "ModelEntry",
    "UnknownModelError",
    "UnverifiedDownloadWarning",
    "register",
    "get_entry",
    "list_models",
    "is_offline",
    "cache_path",
    "fetch",
    "download",
    "file_sha256",
]

FORMATS = frozenset(
    {
        "native",
        "nvlabs-pkl",
        "tf-pkl",
        "rosinality-pt",
        "mganprior-pth",
        "dcgan-safetensors",
        "vgg16-safetensors",
        "lpips-vgg-pt",
        "bigprior-pth",
        "fid-inception-pth",
    }
)
KINDS = frozenset({"generator", "perceptual", "fusion", "metric"})

USER_AGENT = "genprior-zoo/0.1 (+python-urllib)"
_CHUNK = 1 << 20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TRUE = {"1", "true", "yes"}
_PACKAGED_DIR = Path(__file__).resolve().parent.parent / "models"


class UnknownModelError(GenpriorError, KeyError):
    """No model of that name is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnverifiedDownloadWarning(UserWarning):
    """A file was accepted without a recorded sha256 (trust on first use)."""


@dataclass(frozen=True)
class ModelEntry:
    """One named model file: where it comes from, how to check it, and under which terms."""

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    license: str
    description: str
    format: str
    kind: str = "generator"
    config: dict[str, Any] | None = field(default=None, hash=False)
    size_bytes: int | None = None
    packaged: bool = False
    search: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise GenpriorError("a model entry needs a name")
        if not self.filename or Path(self.filename).name != self.filename or self.filename in {".", ".."}:
            raise GenpriorError(f"model {self.name!r}: filename must be a plain file name, got {self.filename!r}")
        if self.sha256 is not None and not _SHA256_RE.fullmatch(self.sha256):
            raise GenpriorError(f"model {self.name!r}: sha256 must be 64 lower-case hex digits or None")
        if self.format not in FORMATS:
            raise GenpriorError(f"model {self.name!r}: unknown format {self.format!r}; known: {sorted(FORMATS)}")
        if self.kind not in KINDS:
            raise GenpriorError(f"model {self.name!r}: unknown kind {self.kind!r}; known: {sorted(KINDS)}")
        if not self.license.strip():
            raise GenpriorError(f"model {self.name!r}: a licence is required")
        for rel in self.search:
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise GenpriorError(f"model {self.name!r}: search path {rel!r} must be relative, without '..'")


# --------------------------------------------------------------------------------------------- registry

_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry, *, replace: bool = False) -> None:
    """Add an entry to the zoo; a different entry under a taken name is refused unless ``replace``."""
    old = _REGISTRY.get(entry.name)
    if old is not None and old != entry and not replace:
        raise GenpriorError(f"a different model is already registered as {entry.name!r} (use replace=True)")
    _REGISTRY[entry.name] = entry


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name``; an unknown name raises `UnknownModelError` with the closest names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}.")


def list_models(kind: str | None = None) -> list[ModelEntry]:
    """The registered entries in registration order, optionally only those of one kind."""
    if kind is not None and kind not in KINDS:
        raise GenpriorError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    return [e for e in _REGISTRY.values() if kind is None or e.kind == kind]


# --------------------------------------------------------------------------------------------- fetch


def is_offline() -> bool:
    """True when the environment variable ``GENPRIOR_OFFLINE`` is 1, true or yes."""
    return os.environ.get("GENPRIOR_OFFLINE", "").strip().lower() in _TRUE


def cache_path(entry: ModelEntry) -> Path:
    """Where the cache keeps (or would keep) this entry's file."""
    return paths.cache_dir() / "models" / entry.filename


def fetch(name_or_entry: str | ModelEntry, *, offline: bool | None = None, progress: bool = True) -> Path:
    """The local path of a model file: packaged, cached, found in the shared folder, or downloaded."""
    entry = name_or_entry if isinstance(name_or_entry, ModelEntry) else get_entry(name_or_entry)
    offline = is_offline() if offline is None else offline
    target = cache_path(entry)
    problems: list[str] = []
    candidates = _local_candidates(entry, target)
    for candidate in candidates:
        if _usable(entry, candidate, problems):
            return candidate
    problems.extend(f"not found: {c}" for c in candidates if c != target and not c.is_file())
    if offline:
        raise DownloadError(_manual_message(entry, target, "genprior is offline (GENPRIOR_OFFLINE)", problems))
    if not entry.urls:
        raise DownloadError(_manual_message(entry, target, "no download URL is known", problems))
    for url in entry.urls:
        try:
            download(url, target, sha256=entry.sha256, progress=progress)
        except DownloadError as exc:
            problems.append(str(exc))
            continue
        _warn_if_unverified(entry, target)
        return target
    raise DownloadError(_manual_message(entry, target, "every download URL failed", problems))


def _local_candidates(entry: ModelEntry, target: Path) -> list[Path]:
    """The places a file may already be, in the order they are tried."""
    found = [_PACKAGED_DIR / entry.filename] if entry.packaged else []
    found.append(target)
    shared = paths.shared_dir()
    if shared is not None:
        found.extend(shared / rel for rel in entry.search)
    return found


def _usable(entry: ModelEntry, path: Path, problems: list[str]) -> bool:
    """Whether ``path`` exists and matches the recorded hash; a mismatch is warned about and noted."""
    if not path.is_file():
        return False
    if entry.sha256 is None:
        return True
    actual = file_sha256(path)
    if actual == entry.sha256:
        return True
    note = f"{path} has sha256 {actual}, expected {entry.sha256}: not used"
    warnings.warn(f"model {entry.name!r}: {note}", stacklevel=3)
    problems.append(note)
    return False


def _warn_if_unverified(entry: ModelEntry, path: Path) -> None:
    """Trust on first use: say that nothing was checked, and print the hash to record."""
    if entry.sha256 is None:
        warnings.warn(
            f"model {entry.name!r}: no sha256 is recorded, so the download was accepted unchecked; "
            f"its sha256 is {file_sha256(path)} ({path})",
            UnverifiedDownloadWarning,
            stacklevel=3,
        )


def _manual_message(entry: ModelEntry, target: Path, reason: str, problems: list[str]) -> str:
    """A DownloadError message that tells a user exactly how to provide the file by hand."""
    expected = entry.sha256 or "not recorded (any file is accepted; its hash is printed on first use)"
    urls = "\n".join(f"    {u}" for u in entry.urls) or "    (none known; see the description below)"
    lines = [
        f"model {entry.name!r} is not available: {reason}.",
        f"  file name:       {entry.filename}",
        f"  place it at:     {target}",
        f"  expected sha256: {expected}",
        "  URLs:",
        urls,
        f"  description:     {entry.description}",
    ]
    if problems:
        lines.append("  details:")
        lines.extend(f"    {p}" for p in problems)
    lines.append("  (the cache folder is set by GENPRIOR_HOME; GENPRIOR_OFFLINE=1 forbids downloads)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- download


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file, as 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str, dest: str | os.PathLike[str], *, sha256: str | None, progress: bool = True, timeout: float = 30
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part`` (resumed if present), check sha256, move into place.

    Every failure raises `DownloadError`. An interrupted transfer keeps the ``.part`` for the next call; a
    hash mismatch deletes it. ``dest`` only ever appears complete and verified (``os.replace``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _transfer(url, part, show=progress and _verbose(), timeout=timeout, label=dest.name)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # urllib, socket, bad URL: one clear error
        raise DownloadError(f"{url}: {_describe(exc, timeout)}") from exc
    _check_hash(part, sha256, url)
    os.replace(part, dest)
    return dest


def _verbose() -> bool:
    """Progress bars are on unless ``GENPRIOR_DOWNLOAD_VERBOSE=0``."""
    return os.environ.get("GENPRIOR_DOWNLOAD_VERBOSE", "1").strip() != "0"


def _describe(exc: BaseException, timeout: float) -> str:
    """A one-line reason for a network failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g} s"
    return f"{type(reason).__name__}: {reason}"


def _request(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Open ``url``, asking for the bytes from ``offset`` on when it is not zero."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _open_resumable(url: str, offset: int, timeout: float) -> tuple[http.client.HTTPResponse, int]:
    """Open ``url`` to continue at ``offset``; returns the response and the offset it really starts at.

    A 200 reply (Range ignored) starts at 0. A 416 reply or a 206 for another range starts again from 0.
    """
    try:
        resp = _request(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        exc.close()
        return _request(url, 0, timeout), 0
    if not offset or _status(resp) != 206:
        return resp, 0
    if _content_range_start(resp) == offset:
        return resp, offset
    resp.close()
    return _request(url, 0, timeout), 0


def _status(resp: Any) -> int:
    """The HTTP status of a response (200 for schemes without one, e.g. file:)."""
    return getattr(resp, "status", None) or 200


def _content_range_start(resp: Any) -> int | None:
    """The first byte of a 206 reply, from ``Content-Range: bytes START-END/TOTAL``."""
    match = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _expected_size(resp: Any, start: int) -> int | None:
    """The full file size implied by the reply, when the server says how much it sends."""
    length = resp.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _transfer(url: str, part: Path, *, show: bool, timeout: float, label: str) -> None:
    """Stream ``url`` into ``part``, appending when the server honours the resume request."""
    offset = part.stat().st_size if part.is_file() else 0
    resp, start = _open_resumable(url, offset, timeout)
    with resp:
        total = _expected_size(resp, start)
        with open(part, "ab" if start else "wb") as out:
            with tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                      disable=not show, leave=False) as bar:
                _copy(resp, out, bar)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"{url}: the connection ended after {size} of {total} bytes; {part} is kept and the next call resumes"
        )


def _copy(src: Any, out: BinaryIO, bar: tqdm) -> None:
    """Copy a response body to a file in chunks, advancing the progress bar."""
    for block in iter(lambda: src.read(_CHUNK), b""):
        out.write(block)
        bar.update(len(block))


def _check_hash(part: Path, sha256: str | None, url: str) -> None:
    """Delete ``part`` and raise when its hash is not the expected one."""
    if sha256 is None:
        return
    actual = file_sha256(part)
    if actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: sha256 mismatch: expected {sha256.lower()}, got {actual}; the file was deleted")


# --------------------------------------------------------------------------------------------- contents

_BRGM_LICENSE = (
    "see razvanmarinescu/brgm-pytorch (weights released by the BRGM authors; no separate weights licence "
    "stated); training data: {data}"
)
_BRGM_DESC = (
    "BRGM's StyleGAN2 config-e generator trained on {data} ({res}x{res}, {ch} channel{s}), a TensorFlow "
    "StyleGAN2 pickle (G, D, Gs) read without running its code. sha256 not recorded yet: the first download is "
    "trusted and its hash printed."
)
_PGGAN_SOURCES = (
    "No direct-download URL is known for this PyTorch state dict: get "
    "'pretrain/pytorch/{file}' from mGANprior's model links (genforce/mganprior models/README.md, CUHK "
    "SharePoint) or from BIGPrior's Google Drive folder 1nWk76mPtPxWrd9-tPJA3H7zyQmHLYznQ (its pretrain/ folder), "
    "and place it in the genprior cache as models/{file} (fetch() prints the exact path). The Google Drive id "
    "{drive} is the original Theano-era pickle {pkl}, a different format, so it is not listed as a URL. "
    "sha256 not recorded yet."
)
_PGGAN_LICENSE = (
    "CC BY-NC 4.0 (Karras et al., progressive_growing_of_gans networks); PyTorch conversion by mGANprior "
    "(genforce/mganprior, see its licence); training data: {data}"
)


def _pggan_config(resolution: int) -> dict[str, Any]:
    """mGANprior's PGGAN generator settings (fused_scale off, z 512)."""
    kwargs = {"resolution": resolution, "z_space_dim": 512, "image_channels": 3, "fused_scale": False,
              "fmaps_base": 16384, "fmaps_max": 512}
    return {"family": "pggan", "kwargs": kwargs}


def _brgm(key: str, data: str, licence_data: str, res: int, ch: int, url: str) -> ModelEntry:
    """One of the three BRGM TF pickles."""
    return ModelEntry(
        name=f"brgm-{key}-{res}",
        filename=f"brgm-{key}.pkl",
        urls=(url,),
        sha256=None,
        license=_BRGM_LICENSE.format(data=licence_data),
        description=_BRGM_DESC.format(data=data, res=res, ch=ch, s="" if ch == 1 else "s"),
        format="tf-pkl",
        config={"family": "stylegan2", "kwargs": {"img_resolution": res, "img_channels": ch}},
    )


def _pggan(key: str, res: int, data: str, drive: str) -> ModelEntry:
    """One of mGANprior's PGGAN generators (state dict with no download URL)."""
    filename = f"pggan_{key}{res}_generator.pth"
    pkl = f"karras2018iclr-{'celebahq' if key == 'celebahq' else 'lsun-' + key}-{res}x{res}.pkl"
    return ModelEntry(
        name=f"pggan-{key}-{res}",
        filename=filename,
        urls=(),
        sha256=None,
        license=_PGGAN_LICENSE.format(data=data),
        description=f"PGGAN generator ({key}, {res}x{res} RGB), mGANprior's PyTorch state dict. "
        + _PGGAN_SOURCES.format(file=filename, drive=drive, pkl=pkl),
        format="mganprior-pth",
        config=_pggan_config(res),
    )


_LSUN = "LSUN (its terms)"

MODELS: list[ModelEntry] = [
    _brgm("ffhq", "FFHQ faces (90 % train split)", "FFHQ (CC BY-NC-SA 4.0)", 1024, 3,
          "https://dl.dropboxusercontent.com/s/jlgybz6nfhmpv54/ffhq.pkl"),
    _brgm("xray", "MIMIC chest X-rays (frontal)", "MIMIC-CXR (PhysioNet credentialed access)", 1024, 1,
          "https://dl.dropboxusercontent.com/s/gphxjioth6dn5kb/xray.pkl"),
    _brgm("brains", "T1 brain MRI slices (ADNI, GSP, ABIDE, ADHD200, PPMI, OASIS, MCIC, COBRE)",
          "brain MRI collections (ADNI, OASIS, ... each under its own data-use terms)", 256, 1,
          "https://dl.dropboxusercontent.com/s/p9vgdcn5q3wpcuo/brains.pkl"),
    ModelEntry(
        name="stylegan2-ada-ffhq-1024",
        filename="stylegan2-ada-ffhq.pkl",
        urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl",),
        sha256=None,
        license="NVIDIA Source Code License for StyleGAN2-ADA (non-commercial research use); "
        "training data: FFHQ (CC BY-NC-SA 4.0)",
        description="NVlabs stylegan2-ada-pytorch FFHQ generator (config-f, 1024x1024 RGB), a native network "
        "pickle read without running its code. Not BRGM's network: trained on all of FFHQ, so it has seen "
        "BRGM's test split. sha256 not recorded yet: the first download is trusted and its hash printed.",
        format="nvlabs-pkl",
    ),
    ModelEntry(
        name="lpips-vgg16",
        filename="lpips-vgg16.pt",
        urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",),
        # Not hashed here (no network). The same 64 digits are recorded by two unrelated projects that check the
        # download against them (snap-research/discoscene models/perceptual_model.py, and a GuardBench run
        # script that aborts on a mismatch), and they agree with the prefix b437eb09 / suffix c07c3 noted
        # independently in BRGM.md section 2.1.
        sha256="b437eb095feaeb0b83eb3fa11200ebca4548ee39a07fb944a417ddc516cc07c3",
        license="LPIPS linear weights BSD-2-Clause (Zhang et al. 2018); VGG16 ImageNet weights CC BY 4.0 "
        "(Simonyan & Zisserman); TorchScript port distributed by NVIDIA with stylegan2-ada-pytorch "
        "(NVIDIA Source Code License)",
        description="NVIDIA's TorchScript LPIPS-VGG16 ('lin'), the perceptual net of BRGM and stylegan2-ada-pytorch "
        "metrics. genprior reads only its tensors (genprior.io.torchscript; its code is never run) into "
        "genprior.losses.LPIPS. sha256 taken from public projects that verify it, not yet hashed by genprior; a "
        "copy in the shared folder is used from weights/vgg16.pt.",
        format="lpips-vgg-pt",
        kind="perceptual",
        search=("weights/vgg16.pt",),
    ),
    _pggan("bedroom", 256, _LSUN, "1xbb2xakSn22lZoUcdaydQaBHoBSiUt6T"),
    _pggan("churchoutdoor", 256, _LSUN, "1yGlooC5u4KuiOMzuJiA1W-MW4WB-wqnf"),
    _pggan("conferenceroom", 256, _LSUN, "1yLZ2YJ1ajh-amUJMpOmFHL9P3810xdqk"),
    _pggan("celebahq", 1024, "CelebA-HQ (CelebA: non-commercial research use)", "188K19ucknC6wg1R6jbuPEhTq9zoufOx4"),
    ModelEntry(
        name="vgg16-imagenet-features",
        filename="vgg16-imagenet-features.safetensors",
        urls=(),
        sha256="02ba23e6c58a56bd38ce1ed7fd809cac8e8f8bb85da6ea2208e736555cef54d2",
        license="CC BY 4.0 (Simonyan & Zisserman's VGG16 ImageNet weights)",
        description="The 13 conv layers of ImageNet VGG16 (torchvision layer indices), float16, RGB input 0..255 "
        "minus the ImageNet mean. Found in the shared folder (weights/); no download URL.",
        format="vgg16-safetensors",
        kind="perceptual",
        size_bytes=29432040,
        search=("weights/vgg16-imagenet-features.safetensors",),
    ),
    ModelEntry(
        name="inception-fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        urls=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
              "pt_inception-2015-12-05-6726825d.pth",),
        # Not hashed here (no network): the 64 digits are recorded beside this URL by snap-research/discoscene
        # (models/inception_model.py) and begin with the 8 hex digits torch.hub checks in the file name.
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        license="Apache-2.0 (pytorch-fid's PyTorch port of TensorFlow's inception-2015-12-05 ImageNet weights)",
        description="FID's Inception-v3 (TF 2015-12-05 weights as ported by pytorch-fid; torch state dict, read "
        "with weights_only=True). When cached, `genprior evaluate` and benchmarks/training.py report FID with it.",
        format="fid-inception-pth",
        kind="metric",
        size_bytes=95628359,
        search=("weights/pt_inception-2015-12-05-6726825d.pth",),
    ),
    ModelEntry(
        name="dcgan-digiface64",
        filename="dcgan-digiface64.safetensors",
        urls=(),
        sha256="a3b27a499b9edf64b24aa35ac91d77d8b654b5e3a43e7a55f6c2d9a29ceb96de",
        license="MIT (gan-face-generate 1.1.1, © 2023 chien liu); trained on DigiFace-1M (non-commercial terms)",
        description="A small DCGAN face generator: z (N,100,1,1) ~ N(0, I) to 64x64 RGB in [-1, 1], float16, "
        "PyTorch DCGAN tutorial layout. Found in the shared folder (weights/); no download URL.",
        format="dcgan-safetensors",
        size_bytes=7159952,
        search=("weights/dcgan-digiface64.safetensors",),
    ),
    ModelEntry(
        name="genprior-digits32",
        filename="genprior-digits32.safetensors",
        urls=(),
        sha256="6f4e7b96686c6ac536cae5581d33c070d27ad2a1e5ae545d5549047931b6e29d",
        license="genprior's weights: MIT; trained on the MNIST test set (Y. LeCun, C. Cortes; CC BY-SA 3.0)",
        description="genprior's StyleGAN2 for handwritten digits, 32x32 grey, trained on a CPU (73 kimg, "
        "2.0 CPU hours; see genprior/models/README.md). Ships inside the package.",
        format="native",
        size_bytes=2687148,
        packaged=True,
    ),
    ModelEntry(
        name="genprior-faces64",
        filename="genprior-faces64.safetensors",
        urls=(),
        sha256="f54e8660251b1d705f39a90d8cdf40067470f22f9c2a86cefc35196fa2b9eda1",
        license="genprior's weights: MIT; trained on UTKFace aligned crops (Zhang, Song, Qi 2017), whose terms allow "
        "non-commercial research use only",
        description="genprior's StyleGAN2 for faces, 64x64 RGB, trained on a CPU (early: 87 kimg, 4.9 CPU hours; "
        "see genprior/models/README.md). Ships inside the package.",
        format="native",
        size_bytes=4565296,
        packaged=True,
    ),
    ModelEntry(
        name="genprior-brain64",
        filename="genprior-brain64.safetensors",
        urls=(),
        sha256="d25b00727c236cc0f84c976f4961657a40f2173cdfe75bab3588c8edd8efb7dc",
        license="genprior's weights: MIT; trained on the Brain Tumor MRI Dataset train split (M. Nickparvar; CC0)",
        description="genprior's StyleGAN2 for brain MRI slices, 64x64 grey, trained on a CPU (early: 65 kimg, "
        "3.7 CPU hours; see genprior/models/README.md). Ships inside the package.",
        format="native",
        size_bytes=4561424,
        packaged=True,
    ),
]

for _entry in MODELS:
    register(_entry)
del _entry
