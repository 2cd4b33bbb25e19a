"""Testing BIGPrior fusion nets: outputs, φ maps and per-image metrics for `FusionTriples`.

`test_fusion` writes, per image, the output and φ map as PNGs (``<stem>.png``, ``<stem>_phi.png``) and raw
float arrays (``<stem>.npy``: the unclamped x̂, ``<stem>_phi.npy``: φ; both (3, H, W) float32), and
``metrics.json`` for the whole set. Every file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..io.atomic import atomic_path
from ..io.images import save_image
from ..metrics import colorization_auc, psnr, ssim
from ..progress import progress as progress_bar
from ..training import run_state
from .fusion import FusionNet
from .fusion_data import FusionTriples, collate

__all__ = ["test_fusion"]


def _save_npy(path: Path, arr: np.ndarray, overwrite: bool) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)


def test_fusion(model: FusionNet | str | os.PathLike, dataset: FusionTriples, out_dir: str | os.PathLike, *,
                batch: int = 4, overwrite: bool = False, progress: bool = True) -> dict:
    """Run a fusion net on ``dataset``; write outputs, φ maps and ``metrics.json`` into ``out_dir``.

    Per image (with truth): ``mse`` and ``psnr_float`` on the unclamped float output (as the official stored
    metrics), ``psnr``, ``ssim`` (and ``auc`` for colorization) on the output clamped to [0, 1], the same for
    the GAN estimate (``*_gan``), ``mean_phi`` and ``phi_outside`` (share of φ values outside [0, 1]).
    Returns the metrics dict (``per_image`` by stem, ``mean`` over images).
    """
    fusion = model if isinstance(model, FusionNet) else FusionNet.load(model)
    fusion.check(task=dataset.task, channels=dataset.channels)
    out_dir = Path(out_dir)
    if (out_dir / "metrics.json").exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds test results; pass overwrite=True or another folder")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, collate_fn=collate)
    per_image: dict[str, dict] = {}
    for b in progress_bar(loader, desc="test", enabled=progress):
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
            if dataset.task == "colorize":
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
    run_state.write_json(out_dir / "metrics.json", result)
    return result


test_fusion.__test__ = False  # not a pytest test
