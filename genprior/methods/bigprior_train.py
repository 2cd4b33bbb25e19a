"""Training and testing BIGPrior fusion nets on (observation, GAN estimate, truth) triples.

* `FusionTriples`: the triples from three folders, matched by file stem (all-digit stems by their number, so
  ``0250.webp`` matches ``250.png``); an optional mask folder for in-painting (white = observed, black = hole,
  as ``genprior restore --mask FILE``; items carry it as 1 on the holes, BIGPrior's M).
* `train_fusion`: the official recipe (loss ``MSE + phi_weight·|mean φ|`` in the [−0.5, 0.5] domain, Adam,
  ``CosineAnnealingWarmRestarts`` with T_0 in epochs stepped per iteration at fractional epochs). Each run
  lives in ``<out_root>/<name>_<id>`` (ids 1, 2, …; existing folders are never overwritten; names are
  matched exactly, so ``col`` and ``col_bedroom`` keep separate counters) with ``args.json``,
  ``history.json`` (per-epoch loss, MSE, mean φ, PSNR, lr, seconds) and per-epoch checkpoints
  ``checkpoints/net_<e>.safetensors`` (weights + config, loadable by `BIGPrior.load`) and
  ``checkpoints/train_<e>.safetensors`` + ``train_<e>.json`` (optimizer and scheduler state). Epochs count
  from 0 as the official code (``net_24`` is the 25th epoch).
* `test_fusion`: outputs and φ maps as PNGs (``<stem>.png``, ``<stem>_phi.png``) and raw float arrays
  (``<stem>.npy``: the unclamped x̂, ``<stem>_phi.npy``: φ; both (3, H, W) float32), and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..errors import GenpriorError
from ..io.atomic import atomic_path
from ..io.images import IMAGE_SUFFIXES, read_image, save_image
from ..metrics import colorization_auc, psnr, ssim
from .bigprior import BIGPrior, check_task_name, task_channels
from .fusion_nets import NET_KINDS, BoundedPhi, DnCNNPhi

__all__ = ["FusionTriples", "train_fusion", "test_fusion", "experiment_dir", "latest_epoch"]


# --------------------------------------------------------------------------- data

def _stem_key(stem: str) -> str:
    return str(int(stem)) if stem.isdigit() else stem


def _index_folder(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise GenpriorError(f"the {what} folder {folder} does not exist")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES + (".npy",) or not p.is_file():
            continue
        key = _stem_key(p.stem)
        if key in found:
            raise GenpriorError(f"the {what} folder {folder} has two files for image {key!r}: "
                                f"{found[key].name} and {p.name}")
        found[key] = p
    return found


def _sort_keys(keys) -> list[str]:
    return sorted(keys, key=lambda k: (0, int(k), "") if k.isdigit() else (1, 0, k))


def _names(keys: list[str], limit: int = 8) -> str:
    keys = _sort_keys(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


class FusionTriples(torch.utils.data.Dataset):
    """(observation y, GAN estimate g, truth x[, mask]) per image, in [0, 1], from folders matched by stem.

    ``stems``: the images to use (names or numbers; default: every observation). Every selected image must
    be in every folder, otherwise `GenpriorError` names the missing files. ``truths`` may be None (testing
    without ground truth). Colorization observations are read as 1-channel grey; denoising observations may be
    float ``.npy`` arrays (H, W, 3) in [0, 1] scale (not clipped). ``crop``: a square crop size, centred
    unless ``augment``; ``augment``: random crop position and random horizontal flip (torch's global RNG).
    Items are dicts with tensors ``y`` (C_y, H, W), ``g`` (3, H, W), ``x`` (3, H, W) or None, ``mask``
    (1, H, W) or None and the ``stem``.
    """

    def __init__(self, observations: str | os.PathLike, estimates: str | os.PathLike,
                 truths: str | os.PathLike | None = None, *, task: str, masks: str | os.PathLike | None = None,
                 stems: list | range | None = None, crop: int | None = None, augment: bool = False):
        self.task = check_task_name(task)
        self.channels = task_channels(task)
        self.crop, self.augment = crop, bool(augment)
        folders = {"observation": Path(observations), "GAN estimate": Path(estimates)}
        if truths is not None:
            folders["truth"] = Path(truths)
        if masks is not None:
            folders["mask"] = Path(masks)
        index = {what: _index_folder(f, what) for what, f in folders.items()}
        if stems is None:
            keys = _sort_keys(index["observation"])
            if not keys:
                raise GenpriorError(f"no images in the observation folder {folders['observation']}")
        else:
            keys = [_stem_key(str(s)) for s in stems]
            if not keys:
                raise GenpriorError("stems selects no images")
        problems = []
        for what, files in index.items():
            missing = [k for k in keys if k not in files]
            if missing:
                problems.append(f"{len(missing)} {what} file(s) missing in {folders[what]} for image(s) "
                                f"{_names(missing)}")
        if stems is None:
            for what, files in index.items():
                extra = [k for k in files if k not in set(keys)]
                if extra and what != "truth":
                    problems.append(f"{what} file(s) without an observation in {folders[what]}: {_names(extra)}")
        if problems:
            raise GenpriorError("mismatched BIGPrior triples: " + "; ".join(problems))
        self.folders = {k: str(v) for k, v in folders.items()}
        self.stems = keys
        self.files = [{what: index[what][k] for what in index} for k in keys]

    def __len__(self) -> int:
        return len(self.stems)

    def describe(self) -> dict:
        return {"task": self.task, "folders": self.folders, "stems": self.stems, "crop": self.crop,
                "augment": self.augment}

    def _read(self, path: Path, channels: int) -> torch.Tensor:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False).astype(np.float32)
            t = torch.from_numpy(arr)
            t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
            if t.shape[0] != channels:
                raise GenpriorError(f"{path}: expected {channels} channel(s), got array of shape {arr.shape}")
            return t
        return read_image(path, channels)[0]

    @staticmethod
    def _crop(t: torch.Tensor | None, box: tuple[int, int, int] | None, flip: bool) -> torch.Tensor | None:
        if t is None:
            return t
        if box is not None:
            top, left, size = box
            t = t[..., top:top + size, left:left + size]
        return t.flip(-1) if flip else t

    def __getitem__(self, i: int) -> dict[str, Any]:
        f = self.files[i]
        y = self._read(f["observation"], self.channels)
        g = self._read(f["GAN estimate"], 3)
        x = self._read(f["truth"], 3) if "truth" in f else None
        mask = (self._read(f["mask"], 1) < 0.5).float() if "mask" in f else None  # file white = observed -> 1 = hole
        sizes = {what: tuple(t.shape[-2:]) for what, t in (("observation", y), ("GAN estimate", g),
                                                               ("truth", x), ("mask", mask)) if t is not None}
        if len(set(sizes.values())) > 1:
            raise GenpriorError(f"image {self.stems[i]}: sizes differ: " +
                                ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in sizes.items()))
        box, flip = None, False
        if self.crop:
            h, w = y.shape[-2:]
            if self.crop > min(h, w):
                raise GenpriorError(f"crop {self.crop} is larger than image {self.stems[i]} ({h}x{w})")
            if self.augment:
                top = int(torch.randint(0, h - self.crop + 1, ()))
                left = int(torch.randint(0, w - self.crop + 1, ()))
            else:
                top, left = (h - self.crop) // 2, (w - self.crop) // 2
            box = (top, left, self.crop)
        if self.augment:
            flip = bool(torch.rand(()) < 0.5)
        return {"y": self._crop(y, box, flip), "g": self._crop(g, box, flip), "x": self._crop(x, box, flip),
                "mask": self._crop(mask, box, flip), "stem": self.stems[i]}


def _collate(items: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"stem": [it["stem"] for it in items]}
    for k in ("y", "g", "x", "mask"):
        vals = [it[k] for it in items]
        out[k] = None if vals[0] is None else torch.stack(vals)
    return out


# --------------------------------------------------------------------------- files

def _atomic_write(path: Path, write, overwrite: bool = True) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        write(str(tmp))


def _write_json(path: Path, obj: Any) -> None:
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=_json_default)
            f.write("\n")
    _atomic_write(path, w)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor) and o.numel() == 1:
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def _run_ids(out_root: Path, name: str) -> dict[int, Path]:
    pat = re.compile(re.escape(name) + r"_(\d+)")
    if not out_root.is_dir():
        return {}
    return {int(m.group(1)): p for p in out_root.iterdir() if p.is_dir() and (m := pat.fullmatch(p.name))}


def experiment_dir(out_root: str | os.PathLike, name: str) -> Path:
    """Create and return a new ``<out_root>/<name>_<id>`` (id = 1 + the highest existing id of that name)."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    ids = _run_ids(out_root, name)
    i = max(ids, default=0) + 1
    while True:
        path = out_root / f"{name}_{i}"
        try:
            path.mkdir()  # atomic: two runs started together cannot share a folder
            return path
        except FileExistsError:
            i += 1


def latest_epoch(run: str | os.PathLike) -> int | None:
    """The last epoch with a complete checkpoint in a run folder (its ``train_<e>.json`` written), or None."""
    ck = Path(run) / "checkpoints"
    if not ck.is_dir():
        return None
    epochs = [int(m.group(1)) for p in ck.iterdir() if (m := re.fullmatch(r"train_(\d+)\.json", p.name))]
    return max(epochs, default=None)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


# --------------------------------------------------------------------------- training

_RESUME_IGNORED = ("epochs", "progress", "device", "resume")


def train_fusion(dataset: FusionTriples, out_root: str | os.PathLike, *, net: str = "dncnn",
                 task: str | None = None, name: str | None = None, epochs: int = 25, batch: int = 8,
                 lr: float = 0.01, phi_weight: float = 1e-5, t0_epochs: int = 16, seed: int = 0,
                 resume: bool = True, net_options: dict | None = None, shuffle: bool = True,
                 device: str | torch.device = "cpu", progress: bool = True) -> Path:
    """Train a φ-net on ``dataset``; returns the run folder ``<out_root>/<name>_<id>``.

    ``net``: "dncnn" (official DnCNN-17 unless ``net_options`` say otherwise, e.g. ``{"layers": 8}``) or
    "bounded" (`BoundedPhi`; ``{"use_mask": True}`` feeds the hole mask). ``name`` defaults to
    ``<task>_<net>``. With ``resume``, the latest run of that name whose saved arguments are the same (the
    epoch count aside) and that has fewer than ``epochs`` epochs continues from its last checkpoint;
    otherwise a new run folder is made. Official settings: batch 8, lr 0.01, phi_weight 1e-5, T_0 16 epochs.
    """
    if net not in NET_KINDS:
        raise GenpriorError(f"unknown fusion net {net!r}; expected one of {', '.join(NET_KINDS)}")
    task = check_task_name(task or dataset.task)
    if task != dataset.task:
        raise GenpriorError(f"train_fusion was asked for {task} but the dataset is for {dataset.task}")
    if "truth" not in dataset.folders:
        raise GenpriorError("training needs the truth images: give FusionTriples a truths folder")
    for what, v in (("epochs", epochs), ("batch", batch), ("t0_epochs", t0_epochs)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise GenpriorError(f"{what} must be an integer >= 1, got {v!r}")
    name = name or f"{task}_{net}"
    out_root = Path(out_root)
    opts = dict(net_options or {})
    args = {"name": name, "net": net, "task": task, "epochs": epochs, "batch": batch, "lr": lr,
            "phi_weight": phi_weight, "t0_epochs": t0_epochs, "seed": seed, "shuffle": shuffle,
            "net_options": opts, "data": dataset.describe(), "device": str(device)}

    run, start = None, 0
    if resume:
        for _, path in sorted(_run_ids(out_root, name).items(), reverse=True):
            try:
                old = json.loads((path / "args.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            same = all(old.get(k) == json.loads(json.dumps(v, default=_json_default))
                       for k, v in args.items() if k not in _RESUME_IGNORED)
            last = latest_epoch(path)
            if same and (last is None or last + 1 < epochs):
                run, start = path, (0 if last is None else last + 1)
            break  # only the latest run of this name may be continued
    if run is None:
        run = experiment_dir(out_root, name)
    _write_json(run / "args.json", args)

    torch.manual_seed(seed)
    np.random.seed(seed)
    c_in = task_channels(task)
    model = (DnCNNPhi(in_channels=c_in, **opts) if net == "dncnn" else BoundedPhi(in_channels=c_in, **opts))
    model.to(device)
    fusion = BIGPrior(model, task)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=t0_epochs)
    history: dict[str, list] = {k: [] for k in ("epoch", "loss", "mse", "mean_phi", "psnr", "lr", "seconds")}
    ck = run / "checkpoints"
    if start > 0:
        e = start - 1
        model.load_state_dict(load_file(str(ck / f"net_{e}.safetensors")))
        meta = json.loads((ck / f"train_{e}.json").read_text())
        state = load_file(str(ck / f"train_{e}.safetensors"))
        torch.set_rng_state(state.pop("rng.torch"))
        opt.load_state_dict(_optimizer_state(state, meta["optimizer"]))
        sched.load_state_dict(meta["scheduler"])
        history = json.loads((run / "history.json").read_text())
        for k in history:
            history[k] = history[k][:start]

    loader_kw = {"batch_size": batch, "collate_fn": _collate, "drop_last": False}
    iters = math.ceil(len(dataset) / batch)
    for epoch in range(start, epochs):
        model.train()
        t0 = time.time()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(dataset, shuffle=shuffle, generator=gen, **loader_kw)
        sums = {"loss": 0.0, "mse": 0.0, "mean_phi": 0.0, "psnr": 0.0}
        count = 0
        lr_epoch = opt.param_groups[0]["lr"]
        bar = tqdm(loader, total=iters, desc=f"{run.name} epoch {epoch}", disable=not progress, leave=False)
        for i, b in enumerate(bar):
            xs = b["x"].to(device)
            out, phi = fusion.phi_and_fusion(b["y"], b["g"], b["mask"])
            mse = torch.mean((out - xs) ** 2)
            loss = mse + phi_weight * phi.mean().abs()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step(epoch + (i + 1) / iters)  # the lr of the next iteration, at its fractional epoch
            n = xs.shape[0]
            count += n
            sums["loss"] += loss.item() * n
            sums["mse"] += mse.item() * n
            sums["mean_phi"] += phi.detach().mean().item() * n
            sums["psnr"] += psnr(out.detach().clamp(0, 1), xs).sum().item()
            bar.set_postfix(loss=f"{loss.item():.5f}")
        for k in sums:
            history[k].append(sums[k] / count)
        history["epoch"].append(epoch)
        history["lr"].append(lr_epoch)
        history["seconds"].append(time.time() - t0)
        if not all(math.isfinite(history[k][-1]) for k in sums):
            raise GenpriorError(f"training diverged at epoch {epoch} (loss {history['loss'][-1]}); "
                                "try a lower lr")
        # checkpoint: weights (loadable alone), then optimizer + scheduler; the JSON last marks it complete
        model.eval()
        sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        meta = fusion.metadata({"run": run.name, "epoch": epoch})
        _atomic_write(ck / f"net_{epoch}.safetensors", lambda tmp: save_file(sd, tmp, metadata=meta))
        tensors, opt_meta = _optimizer_tensors(opt)
        tensors["rng.torch"] = torch.get_rng_state()
        _atomic_write(ck / f"train_{epoch}.safetensors", lambda tmp: save_file(tensors, tmp))
        _write_json(run / "history.json", history)
        _write_json(ck / f"train_{epoch}.json", {"epoch": epoch, "optimizer": opt_meta,
                                                  "scheduler": sched.state_dict()})
    return run


# --------------------------------------------------------------------------- testing

def _save_npy(path: Path, arr: np.ndarray, overwrite: bool) -> None:
    def w(tmp):
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
    _atomic_write(path, w, overwrite)


def test_fusion(model: BIGPrior | str | os.PathLike, dataset: FusionTriples, out_dir: str | os.PathLike, *,
                batch: int = 4, overwrite: bool = False, progress: bool = True) -> dict:
    """Run a fusion net on ``dataset``; write outputs, φ maps and ``metrics.json`` into ``out_dir``.

    Per image (with truth): ``mse`` and ``psnr_float`` on the unclamped float output (as the official stored
    metrics), ``psnr``, ``ssim`` (and ``auc`` for colorization) on the output clamped to [0, 1], the same for
    the GAN estimate (``*_gan``), ``mean_phi`` and ``phi_outside`` (share of φ values outside [0, 1]).
    Returns the metrics dict (``per_image`` by stem, ``mean`` over images).
    """
    fusion = model if isinstance(model, BIGPrior) else BIGPrior.load(model)
    fusion.check(task=dataset.task, channels=dataset.channels)
    out_dir = Path(out_dir)
    if (out_dir / "metrics.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds test results; pass overwrite=True or another folder")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, collate_fn=_collate)
    per_image: dict[str, dict] = {}
    for b in tqdm(loader, desc="test", disable=not progress, leave=False):
        x_float, phi = fusion(b["y"], b["g"], b["mask"], clamp=False)
        x_float, phi = x_float.cpu(), phi.cpu()
        x = x_float.clamp(0, 1)
        m: dict[str, torch.Tensor] = {
            "mean_phi": phi.double().flatten(1).mean(1),
            "phi_outside": ((phi < 0) | (phi > 1)).double().flatten(1).mean(1),
        }
        if b["x"] is not None:
            gt, g = b["x"], b["g"]
            m["mse"] = (x_float.double() - gt.double()).pow(2).flatten(1).mean(1)
            m["psnr_float"] = -10 * torch.log10(m["mse"])
            m["psnr"], m["ssim"] = psnr(x, gt), ssim(x, gt)
            m["mse_gan"] = (g.double() - gt.double()).pow(2).flatten(1).mean(1)
            m["psnr_gan"], m["ssim_gan"] = psnr(g, gt), ssim(g, gt)
            if dataset.task == "colorization":
                m["auc"], m["auc_gan"] = colorization_auc(x, gt), colorization_auc(g, gt)
        for j, stem in enumerate(b["stem"]):
            save_image(x[j], out_dir / f"{stem}.png", overwrite=overwrite)
            save_image(phi[j].clamp(0, 1), out_dir / f"{stem}_phi.png", overwrite=overwrite)
            _save_npy(out_dir / f"{stem}.npy", x_float[j].numpy().astype(np.float32), overwrite)
            _save_npy(out_dir / f"{stem}_phi.npy", phi[j].numpy().astype(np.float32), overwrite)
            per_image[stem] = {k: float(v[j]) for k, v in m.items()}
    keys = next(iter(per_image.values())).keys() if per_image else []
    result = {"model": fusion.source, "net": fusion.config(), "data": dataset.describe(),
              "per_image": per_image,
              "mean": {k: float(np.mean([r[k] for r in per_image.values()])) for k in keys}}
    _write_json(out_dir / "metrics.json", result)
    return result


test_fusion.__test__ = False  # not a pytest test


# --------------------------------------------------------------------------- conformance to stored outputs

def _quantise(x: torch.Tensor) -> torch.Tensor:
    """torchvision ``save_image``'s 8-bit values: clamp to [0, 1], then ``x·255 + 0.5`` truncated."""
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def compare_to_reference(model: BIGPrior | str | os.PathLike, dataset: FusionTriples,
                         reference: str | os.PathLike, *, progress: bool = True) -> dict:
    """Pixel agreement of ``model``'s outputs and φ maps with stored 8-bit ones (``<stem>.*``, ``<stem>_phi.*``).

    The model's float outputs are quantised as torchvision's ``save_image`` (the official test's writer) and
    compared with the reference images. Returns, for "output" and "phi", the fraction of identical 8-bit values
    (``identical``), the largest difference in grey levels (``max_diff``) over all images, and per image.
    """
    fusion = model if isinstance(model, BIGPrior) else BIGPrior.load(model)
    fusion.check(task=dataset.task, channels=dataset.channels)
    ref = _index_folder(Path(reference), "reference")
    result: dict[str, Any] = {"per_image": {}}
    totals = {k: [0, 0, 0] for k in ("output", "phi")}  # identical, count, max
    for i in tqdm(range(len(dataset)), desc="compare", disable=not progress, leave=False):
        item = dataset[i]
        stem = item["stem"]
        missing = [k for k in (stem, f"{stem}_phi") if k not in ref]
        if missing:
            raise GenpriorError(f"no reference image for {', '.join(missing)} in {reference}")
        mask = None if item["mask"] is None else item["mask"][None]
        x, phi = fusion(item["y"][None], item["g"][None], mask, clamp=False)
        row = {}
        for what, ours, key in (("output", x, stem), ("phi", phi, f"{stem}_phi")):
            theirs = (read_image(ref[key], 3) * 255).round().to(torch.uint8)
            if theirs.shape != ours.shape:
                raise GenpriorError(f"{ref[key]}: shape {tuple(theirs.shape)} differs from the output's "
                                    f"{tuple(ours.shape)}")
            diff = (_quantise(ours.cpu()).int() - theirs.int()).abs()
            same, mx = int((diff == 0).sum()), int(diff.max())
            t = totals[what]
            t[0], t[1], t[2] = t[0] + same, t[1] + diff.numel(), max(t[2], mx)
            row[what] = {"identical": same / diff.numel(), "max_diff": mx}
        result["per_image"][stem] = row
    for what, (same, count, mx) in totals.items():
        result[what] = {"identical": same / max(count, 1), "max_diff": mx, "values": count}
    return result


__all__ += ["compare_to_reference"]
