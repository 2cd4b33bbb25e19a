"""Training BIGPrior fusion nets (φ-nets) on `FusionTriples`, resumable per epoch.

The official recipe: loss ``MSE + phi_weight·|mean φ|`` in the [−0.5, 0.5] domain, Adam,
``CosineAnnealingWarmRestarts`` with T_0 in epochs stepped per iteration at fractional epochs. Each run lives in
``<out_root>/<name>_<id>`` (ids 1, 2, …; existing folders are never overwritten; names are matched exactly, so
``col`` and ``col_bedroom`` keep separate counters) with ``args.json``, ``history.json`` (per-epoch loss,
MSE, mean φ, PSNR, lr, seconds) and per-epoch checkpoints ``checkpoints/net_<e>.safetensors`` (weights +
config, loadable by `FusionNet.load`) and ``checkpoints/train_<e>.safetensors`` + ``train_<e>.json``
(optimiser, scheduler and RNG state, through `genprior.training.run_state`; the JSON, written last, marks the
epoch complete). Epochs count from 0 as the official code (``net_24`` is the 25th epoch).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import GenpriorError
from ..metrics import psnr
from ..progress import progress as progress_bar
from ..training import run_state
from .fusion import FusionNet, check_task_name, task_channels
from .fusion_data import FusionTriples, collate
from .fusion_nets import NET_KINDS, BoundedPhi, DnCNNPhi

__all__ = ["train_fusion", "experiment_dir", "latest_epoch"]

_RESUME_IGNORED = ("epochs", "progress", "device", "resume")


def _run_ids(out_root: Path, name: str) -> dict[int, Path]:
    pat = re.compile(re.escape(name) + r"_(\d+)")
    if not out_root.is_dir():
        return {}
    return {int(m.group(1)): p for p in out_root.iterdir() if p.is_dir() and (m := pat.fullmatch(p.name))}


def experiment_dir(out_root: str | os.PathLike, name: str) -> Path:
    """Create and return a new ``<out_root>/<name>_<id>`` (id = 1 + the highest existing id of that name)."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    i = max(_run_ids(out_root, name), default=0) + 1
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


def _resumable_run(out_root: Path, name: str, args: dict, epochs: int) -> tuple[Path | None, int]:
    """(the latest run of ``name`` if its saved arguments equal ``args`` (epochs aside) and it is unfinished,
    the epoch to start at); (None, 0) otherwise."""
    for _, path in sorted(_run_ids(out_root, name).items(), reverse=True):
        try:
            old = json.loads((path / "args.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        same = all(old.get(k) == json.loads(run_state.to_json(v)) for k, v in args.items() if k not in _RESUME_IGNORED)
        last = latest_epoch(path)
        if same and (last is None or last + 1 < epochs):
            return path, 0 if last is None else last + 1
        return None, 0  # only the latest run of this name may be continued
    return None, 0


def _optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """The optimiser state of a ``train_<e>`` checkpoint, in this version's layout or the earlier one
    (tensors ``<param>.<name>``, other values under ``scalars``)."""
    if "param_groups" in meta:  # earlier layout
        state: dict[int, dict] = {}
        for key, v in list(tensors.items()) + list(meta.get("scalars", {}).items()):
            idx, k = key.split(".", 1)
            state.setdefault(int(idx), {})[k] = v
        return {"state": state, "param_groups": meta["param_groups"]}
    return run_state.optimizer_state(tensors, "opt", meta["groups"])


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
    Random crops and flips of the data set draw from torch's global RNG, seeded here and checkpointed.
    """
    if net not in NET_KINDS:
        raise GenpriorError(f"unknown fusion net {net!r}; expected one of {', '.join(NET_KINDS)}")
    task = check_task_name(task or dataset.task)
    if task != dataset.task:
        raise GenpriorError(f"train_fusion was asked for {task!r} but the dataset is for {dataset.task!r}")
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
    run, start = _resumable_run(out_root, name, args, epochs) if resume else (None, 0)
    run = run or experiment_dir(out_root, name)
    run_state.write_json(run / "args.json", args)

    torch.manual_seed(seed)
    c_in = task_channels(task)
    model = (DnCNNPhi(in_channels=c_in, **opts) if net == "dncnn" else BoundedPhi(in_channels=c_in, **opts))
    model.to(device)
    fusion = FusionNet(model, task)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=t0_epochs)
    history: dict[str, list] = {k: [] for k in ("epoch", "loss", "mse", "mean_phi", "psnr", "lr", "seconds")}
    ck = run / "checkpoints"
    if start > 0:
        e = start - 1
        model.load_state_dict(load_file(str(ck / f"net_{e}.safetensors")))
        meta = json.loads((ck / f"train_{e}.json").read_text())
        state = load_file(str(ck / f"train_{e}.safetensors"))
        run_state.restore_rng(state)
        opt.load_state_dict(_optimizer_state({k: v for k, v in state.items() if k != "rng.torch"}, meta["optimizer"]))
        sched.load_state_dict(meta["scheduler"])
        history = {k: v[:start] for k, v in json.loads((run / "history.json").read_text()).items()}

    iters = math.ceil(len(dataset) / batch)
    for epoch in range(start, epochs):
        model.train()
        t0 = time.time()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=shuffle, generator=gen,
                                             collate_fn=collate, drop_last=False)
        sums = {"loss": 0.0, "mse": 0.0, "mean_phi": 0.0, "psnr": 0.0}
        count = 0
        lr_epoch = opt.param_groups[0]["lr"]
        bar = progress_bar(loader, total=iters, desc=f"{run.name} epoch {epoch}", enabled=progress)
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
        run_state.save_tensors(ck / f"net_{epoch}.safetensors", model.state_dict(),
                               fusion.metadata({"run": run.name, "epoch": epoch}))
        tensors, groups = run_state.optimizer_tensors(opt, "opt")
        run_state.save_tensors(ck / f"train_{epoch}.safetensors", {**tensors, **run_state.rng_tensors()})
        run_state.write_json(run / "history.json", history)
        run_state.write_json(ck / f"train_{epoch}.json", {"epoch": epoch, "optimizer": {"groups": groups},
                                                          "scheduler": sched.state_dict()})
    return run
