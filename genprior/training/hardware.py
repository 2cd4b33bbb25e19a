"""Where a run computes: the device, CPU threads, and the batch that fills a GPU (``batch="auto"``).

``batch="auto"`` on CUDA runs one trial step at ``PROBE_BATCH`` images per pass on copies of the networks,
measures the peak memory it adds, and takes the largest multiple of ``BATCH_MULTIPLE`` whose estimated peak
fits ``MEMORY_SHARE`` of the free memory, capped at ``AUTO_BATCH_MAX`` (throughput of the small networks
trained here stops growing long before, and a GAN's dynamics change with the batch). Elsewhere it is 16.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..devices import resolve_device
from .config import TrainingError

__all__ = ["training_device", "choose_batch", "measure_batch", "AUTO_BATCH_MAX", "CPU_AUTO_BATCH"]

AUTO_BATCH_MAX = 256
CPU_AUTO_BATCH = 16
PROBE_BATCH = 8
BATCH_MULTIPLE = 8
MEMORY_SHARE = 0.8


def training_device(name: str) -> torch.device:
    """``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"`` as a device; an
    unavailable one is a `TrainingError`."""
    device = resolve_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r}: CUDA is not available on this machine (use --device cpu or auto)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainingError(f"device {name!r}: Apple MPS is not available on this machine (use --device cpu)")
    return device


def choose_batch(free_bytes: int, fixed_bytes: int, per_image_bytes: float, *, world_size: int = 1,
                 cap: int = AUTO_BATCH_MAX) -> int:
    """Images per process that fit ``MEMORY_SHARE * free_bytes`` given a fixed cost and a cost per image,
    rounded down to a multiple of ``BATCH_MULTIPLE`` (at least that), total capped at ``cap``."""
    room = MEMORY_SHARE * free_bytes - fixed_bytes
    per_gpu = int(room / max(per_image_bytes, 1) + 1e-6) // BATCH_MULTIPLE * BATCH_MULTIPLE
    per_gpu = max(BATCH_MULTIPLE, min(per_gpu, max(cap // world_size, 1) // BATCH_MULTIPLE * BATCH_MULTIPLE))
    return per_gpu


def measure_batch(device: torch.device, trial: Callable[[int], None], *, world_size: int = 1) -> int:
    """The auto batch (total over ``world_size`` processes): ``trial(n)`` runs one training step with ``n`` images
    per pass on copies of the networks."""
    if device.type != "cuda":
        return max(CPU_AUTO_BATCH // world_size, 1) * world_size
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    trial(PROBE_BATCH)
    torch.cuda.synchronize(device)
    per_image = (torch.cuda.max_memory_allocated(device) - base) / PROBE_BATCH
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return choose_batch(free, 0, per_image, world_size=world_size) * world_size
