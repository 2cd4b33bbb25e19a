"""Training on several processes (``torchrun``), as NVlabs' ``--gpus``: gradients summed over processes.

``torchrun --nproc_per_node 4 -m genprior.training DATA OUT ...`` (or ``genprior train``) starts one process
per GPU; each runs its share of every batch (`genprior.training.batches`) and one collective per phase sums
the gradients and the statistics (StyleGAN3's way: one flat all-reduce, no DDP wrapper, so R1's double
backward works). Rank 0 alone writes files. `World` comes from the environment torchrun sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``); without it the run is one process and nothing here communicates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["World", "world_from_env"]


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # the process group was initialised here (and is destroyed by `close`)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, device: torch.device) -> torch.device:
        """The CUDA device of this rank (``cuda:<local_rank>``) when ``device`` is CUDA, else ``device``."""
        if device.type == "cuda" and self.distributed and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def sum_(self, tensors: list[torch.Tensor]) -> None:
        """Sum ``tensors`` over all processes, in place, with one collective (nothing on one process)."""
        if not self.distributed or not tensors:
            return
        flat = torch.cat([t.reshape(-1).float() for t in tensors])
        dist.all_reduce(flat)
        i = 0
        for t in tensors:
            t.copy_(flat[i:i + t.numel()].reshape(t.shape))
            i += t.numel()

    def agree(self, flags: tuple[bool, ...], device: torch.device) -> tuple[bool, ...]:
        """Each flag true on every process when it is true on any (a host sync: call it rarely)."""
        if not self.distributed:
            return flags
        t = torch.tensor([float(f) for f in flags], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def minimum(self, value: int, device: torch.device) -> int:
        """The smallest ``value`` over all processes (a host sync)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], device=device, dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def broadcast_(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        if self.distributed:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def world_from_env(device: torch.device) -> World:
    """The `World` of this process: initialise the default process group from torchrun's environment (NCCL on
    CUDA, gloo elsewhere) when ``WORLD_SIZE`` > 1 and it is not initialised yet."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = not dist.is_initialized()
    if owns:
        if device.type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local, owns_group=owns)
