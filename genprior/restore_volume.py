"""Restore a DICOM or NIfTI volume slice by slice, and write it back in its own format.

``restore_volume(path, G, options, out_dir)`` reads the scan (`genprior.io.medical`: intensities windowed to
[0, 1] by the file's window or the 0.5 / 99.5 percentiles), cuts it into 2-D slices along ``axis`` (default: the
slice axis, 0 for DICOM; 2, the third voxel axis, for NIfTI), restores them in batches with the options' method
exactly as a 2-D image is restored (`genprior.restore.restore`, each slice fitted to the generator's size and
resampled back), stacks them and writes ``restored.dcm`` / ``restored_dicom/`` / ``restored.nii.gz`` into
``out_dir`` with the input's geometry and tags (a super-resolved volume gets the finer in-plane spacing), plus
``restored.png`` / ``observation.png`` (the middle slice) and ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch.nn.functional as F

from .errors import GenpriorError
from .generators import Generator
from .io.images import save_image
from .io.medical import from_slices, read_volume, to_slices, write_volume

DEFAULT_AXIS = {"dicom": 0, "nifti": 2}


def restore_volume(path: str | Path, G: Generator, options: Any, out_dir: str | Path, *,
                   axis: int | None = None, batch: int = 16) -> dict[str, Any]:
    """Restore every slice of the volume at ``path`` into ``out_dir`` (created, must be empty); returns a summary."""
    from .restore import restore

    if G.channels != 1:
        raise GenpriorError(f"{path}: a scan is grey; this generator makes {G.channels}-channel images")
    if options.task == "colorize":
        raise GenpriorError(f"{path}: a scan cannot be colorized")
    volume = read_volume(path)
    axis = DEFAULT_AXIS[volume.format] if axis is None else axis
    slices = to_slices(volume.values, axis)
    size = tuple(slices[0].shape[-2:])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    restored, first = [], None
    opts = replace(options, simulate=False)
    target = _target_size(size, opts, G)
    for i in range(0, len(slices), batch):
        for k, s in enumerate(slices[i:i + batch]):
            res = restore(s[0], G, replace(opts, seed=options.seed + i + k))
            restored.append(F.interpolate(res.mean, size=target, mode="bicubic", align_corners=False).clamp(0, 1)
                            if tuple(res.mean.shape[-2:]) != target else res.mean)
            if i + k == len(slices) // 2:
                first = (res, s)
    values = from_slices(restored, axis)
    written = write_volume(volume, values, out, description=f"genprior {options.task} ({options.method})")
    res, s = first
    save_image(res.mean, out / "restored.png")
    save_image(s.clamp(0, 1), out / "observation.png")
    summary = {"input": str(path), "volume": volume.describe(), "axis": axis, "slices": len(slices),
               "slice_size": list(size), "restored_slice_size": list(target), "written": str(written),
               "restore_options": {k: v for k, v in asdict(options).items() if k != "progress"},
               "middle_slice_config": {k: v for k, v in res.config.items() if k not in ("generator",)}}
    (out / "config.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _target_size(size: tuple[int, int], opts: Any, G: Generator) -> tuple[int, int]:
    """The restored slice size: the input's, times the factor for super-resolution."""
    if opts.task == "superres":
        return (size[0] * opts.factor, size[1] * opts.factor)
    return size


__all__ = ["restore_volume", "DEFAULT_AXIS"]
