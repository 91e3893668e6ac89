"""torchrun integration: read the launcher's environment, nothing home-made.

``torchrun --nproc_per_node N -m ncalm pretrain ...`` sets RANK, WORLD_SIZE
and LOCAL_RANK; we join its process group (NCCL on GPU, gloo on CPU).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ncalm.devices import torch_device  # device names are checked in one place


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def share_error(self, error: str | None) -> str | None:
        """Rank 0's error (or None) on every rank: a collective in place of a barrier, so
        that the other ranks stop with it instead of waiting forever."""
        if self.world == 1:
            return error
        box = [error]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over ranks (a collective: every rank must call it)."""
        if self.world == 1:
            return t
        t = t.clone()
        dist.all_reduce(t)  # SUM: gloo has no AVG
        return t / self.world


def setup(device: str = "auto") -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1; pick this rank's device (``device``: run.device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = torch_device(device, int(os.environ.get("LOCAL_RANK", "0")), "run.device")
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
