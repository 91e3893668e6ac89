"""NCAGenerator, a stream of NCA training sequences, and the one place that picks a backend.

Both backends (CpuBackend in ncalm.nca.cpu, CudaGenerator in ncalm.nca.cuda)
give bit-identical tokens for the same config, seed and ids, behind one small
interface: ``find_rules(ids)``, ``tokens(ids, rule_ids=None)`` (a tensor on the
backend's device), ``tokens_into(ids, rule_ids, out)`` (a host array) and
``generate_into(out, start=, stream=)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ncalm.memory import check_fits
from ncalm.nca.config import NCAConfig
from ncalm.nca.cpu import (MAX_SEQ_ID, CpuBackend, _ids, _integer, _seed, _threads, sequence_tokens,
                           split_inputs_targets)

if TYPE_CHECKING:
    import torch


def resolve_device(name: str, cfg: NCAConfig, key: str = "device") -> str:
    """"cpu" or the CUDA device to generate on for the device ``name`` a user typed (auto, cpu, cuda,
    cuda:N): auto is the GPU backend where this build, machine and config allow it, else the CPU.
    A device not here is a SettingError naming the setting ``key``."""
    from ncalm import _core
    from ncalm.devices import check_device_name, no_cuda, not_here

    check_device_name(name, key)
    if name == "cpu":
        return "cpu"
    count = _core.cuda_device_count()[0] if _core.built_with_cuda else 0
    if count == 0:
        if name == "auto":
            return "cpu"
        from ncalm.nca.cuda import cuda_status

        raise no_cuda(key, name, cuda_status(cpu=None)[1])
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() and not _core.cuda_unsupported(cfg.core) else "cpu"
    if ":" in name and int(name.split(":")[1]) >= count:
        raise not_here(key, repr(name), count)
    return name


def backend(cfg: NCAConfig, seed: int, device: "str | torch.device" = "cpu", threads: int | None = None):
    """The backend for ``device``: "cpu", or "cuda"/"cuda:N" (raises a clear error where CUDA cannot serve)."""
    if str(device) == "cpu":
        return CpuBackend(cfg, seed, threads)
    from ncalm.nca.cuda import CudaGenerator

    return CudaGenerator(cfg, seed, device, threads=threads)


class NCAGenerator:
    """A stream of NCA training sequences: `batch(n)` returns the next n.

    Args:
        cfg: the stream's settings.
        seed: keys every random draw.
        threads: CPU threads (None = all cores).
        device: "cpu", or "cuda"/"cuda:N" for the GPU backend.
        start: id of the first sequence (to resume or to shard by hand).
    """

    def __init__(
        self, cfg: NCAConfig, seed: int = 0, *, threads: int | None = None, device: str = "cpu", start: int = 0
    ) -> None:
        if not isinstance(cfg, NCAConfig):
            raise TypeError(f"cfg must be an NCAConfig (NCAConfig(**d) or NCAConfig.from_dict(d)), "
                            f"got {type(cfg).__name__}")
        self.cfg = cfg
        self.seed = _seed(seed)
        self.threads = _threads(threads)
        self.position = int(_ids("start", start, MAX_SEQ_ID)[0])
        import torch

        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            self.device = None
        if self.device is None or self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device={device!r} is not supported: use 'cpu', 'cuda' or 'cuda:N'")
        self._backend = backend(cfg, self.seed, self.device, self.threads)

    def sequences(self, start: int, count: int) -> np.ndarray:
        """Tokens of sequences start..start+count-1 as int32 (count, seq_len + 1); position unchanged."""
        return sequence_tokens(self.cfg, self.seed, np.arange(start, start + count), threads=self.threads)

    def batch(self, n: int) -> "tuple[torch.Tensor, torch.Tensor]":
        """The next n sequences as (inputs, targets), int64 tensors (n, seq_len) on self.device."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer")
        # int64 tokens, then inputs and targets: three copies
        check_fits(3 * n * (self.cfg.seq_len + 1) * 8, f"n={n:,}")
        tokens = self._backend.tokens(np.arange(self.position, self.position + n, dtype=np.uint64))
        self.position += n
        return split_inputs_targets(tokens, self.cfg)

    def generate_into(self, out: Any, *, stream: Any = None) -> Any:
        """Write the next n = len(out) sequences, seq_len + 1 tokens each, into `out`; returns `out`.

        On "cpu", `out` is a C-contiguous numpy array or CPU tensor. On "cuda",
        a torch tensor, cupy array, or any `__cuda_array_interface__` / DLPack
        buffer on this device (rows contiguous), enqueued on `stream` (default:
        the buffer's current stream) without synchronising. Dtype int32, int64
        or uint16.
        """
        self.position += self._backend.generate_into(out, start=self.position, stream=stream)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"cfg": self.cfg.to_dict(), "seed": self.seed, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [k for k in ("cfg", "seed", "position") if not isinstance(state, dict) or k not in state]
        if missing:
            raise ValueError(f"state has no {missing[0]!r}: not a state_dict() of an NCAGenerator")
        if NCAConfig.from_dict(state["cfg"]) != self.cfg or int(state["seed"]) != self.seed:
            raise ValueError("state was saved from a generator with a different config or seed")
        position = state["position"]
        if not _integer(position):
            raise ValueError(f"state position={position!r} must be an integer")
        self.position = int(_ids("position", position, MAX_SEQ_ID)[0])  # checked now, not at the next batch
