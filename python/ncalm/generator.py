"""The NCA token generator: Python API over the compiled core (ncalm._core).

Every sequence is a pure function of (config, seed, sequence id): its
simulation is `seq_id`, its rule the first in-band candidate of `seq_id`'s own
candidate stream. So any slice of a stream can be produced independently,
which is what sharding and exact resumption build on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from ncalm import _core
from ncalm.config import NCAConfig
from ncalm.memory import check_fits

if TYPE_CHECKING:  # torch is imported lazily: `ncalm generate` never needs it
    import torch

IGNORE_INDEX = -100  # targets ignored by the loss (torch's cross_entropy default)
MAX_SEQ_ID = (1 << 40) - 1


def _integer(value: Any) -> bool:
    """A Python or numpy integer, not a bool (np.bool_ is no np.integer)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _seed(seed: int) -> int:
    if not _integer(seed) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed={seed!r} must be an integer in [0, 2**64)")
    return int(seed)


def _threads(threads: int | None) -> int:
    if threads is None:
        return 0
    if not _integer(threads) or not 0 <= threads <= 4096:
        raise ValueError(f"threads={threads!r} must be None or 0 (all usable cores), or an integer in [1, 4096]")
    return int(threads)


def _ids(name: str, ids: Iterable[int] | np.ndarray | int, limit: int = 2**56 - 1) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or int(arr.max()) > limit):
        raise ValueError(f"{name} must lie in [0, {limit}]")
    return np.ascontiguousarray(arr, dtype=np.uint64)


def sequence_tokens(
    cfg: NCAConfig,
    seed: int,
    seq_ids: Iterable[int] | np.ndarray,
    rule_ids: Iterable[int] | np.ndarray | None = None,
    threads: int | None = None,
    dtype: Any = np.int32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Token sequences of `seq_len + 1` tokens each, shape (len(seq_ids), seq_len + 1).

    Args:
        rule_ids: per-sequence rule overriding the band search (rule pools).
        dtype: int32, int64 or uint16 (uint16 needs vocab_size <= 65536).
        out: optional C-contiguous buffer of that shape to write into.
    """
    seq = _ids("seq_ids", seq_ids, MAX_SEQ_ID)
    rules = None if rule_ids is None else _ids("rule_ids", rule_ids)
    if rules is not None and rules.size != seq.size:
        raise ValueError(f"rule_ids has {rules.size} entries, seq_ids {seq.size}")
    if out is None:
        check_fits(seq.size * (cfg.seq_len + 1) * np.dtype(dtype).itemsize, f"seq_ids: {seq.size:,} sequences")
        out = np.empty((seq.size, cfg.seq_len + 1), dtype=dtype)
    _core.generate(cfg.core_dict(), _seed(seed), seq, rules, out, _threads(threads))
    return out


def find_rules(
    cfg: NCAConfig, seed: int, ids: Iterable[int] | np.ndarray, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """First in-band candidate rule of each id's candidate stream: (rule_ids uint64, ratios).

    Without a band, rule i of stream i is returned and the ratios are NaN.
    """
    return _core.find_rules(cfg.core_dict(), _seed(seed), _ids("ids", ids, MAX_SEQ_ID), _threads(threads))


def score_rules(
    cfg: NCAConfig, seed: int, rule_ids: Iterable[int] | np.ndarray, threads: int | None = None
) -> np.ndarray:
    """Gzip complexity score of each rule (float64), from its own scoring simulation."""
    return _core.score_rules(cfg.core_dict(), _seed(seed), _ids("rule_ids", rule_ids), _threads(threads))


def filter_rules(
    cfg: NCAConfig, seed: int, start: int, count: int, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Score candidate rules start..start+count-1; keep those strictly inside cfg.band.

    Returns (accepted rule ids, all ratios).
    """
    return filter_band(cfg, start, count, lambda ids: score_rules(cfg, seed, ids, threads))


def filter_band(
    cfg: NCAConfig, start: int, count: int, score: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """filter_rules with the scores from `score` (the CPU or the GPU backend)."""
    if cfg.band is None:
        raise ValueError("filter_rules needs cfg.band=(lower, upper); it is None")
    for name, value in (("start", start), ("count", count)):
        if not _integer(value) or value < 0:
            raise ValueError(f"{name}={value!r} must be a non-negative integer")
    ids = _ids("rule ids", np.arange(int(start), int(start) + int(count), dtype=np.uint64))
    ratios = score(ids)
    return ids[in_band(ratios, cfg.band)], ratios


def in_band(ratios: Iterable[float] | np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Which ratios lie strictly inside band = (lower, upper): the filter's rule (nca-spec.md)."""
    r = np.asarray(ratios, dtype=np.float64)
    return (r > band[0]) & (r < band[1])


def sample_rules(cfg: NCAConfig, seed: int, rule_ids: Iterable[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Weights of the given rules: conv1 (n, 3, 3, C+2, 4), conv2 (n, 4, 16), conv3 (n, 16, C)."""
    d, s = cfg.core_dict(), _seed(seed)
    ids = _ids("rule_ids", rule_ids)
    shapes = [w.shape for w in _core.sample_rule(d, s, 0)] if ids.size == 0 else []
    weights = [_core.sample_rule(d, s, int(r)) for r in ids]
    return {
        name: np.stack([w[i] for w in weights]) if weights else np.empty((0, *shapes[i]), np.float32)
        for i, name in enumerate(("conv1", "conv2", "conv3"))
    }


def rollout(
    cfg: NCAConfig,
    seed: int,
    rule_ids: Iterable[int] | np.ndarray,
    sim_ids: Iterable[int] | np.ndarray,
    frames: int,
    threads: int | None = None,
) -> np.ndarray:
    """Recorded grids, uint8 (n, frames, grid, grid); frame k is after burn_in + k*dT steps."""
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames < 2**31:
        raise ValueError(f"frames={frames!r} must be an integer in [1, 2**31)")
    sims = _ids("sim_ids", sim_ids)
    check_fits(sims.size * frames * cfg.grid**2, f"frames={frames:,} of {sims.size:,} simulations")
    return _core.rollout(cfg.core_dict(), _seed(seed), _ids("rule_ids", rule_ids), sims, frames, _threads(threads))


def encode(cfg: NCAConfig, grids: np.ndarray) -> np.ndarray:
    """Patch tokens (no START/END) of grids shaped (..., grid, grid): int64 (..., N)."""
    grids = np.asarray(grids)
    if grids.size and grids.dtype.kind not in "iu":  # 9.99 would silently become colour 9
        raise ValueError(f"grids must hold integer colours, got dtype {grids.dtype}")
    if grids.shape[-2:] != (cfg.grid, cfg.grid):
        raise ValueError(f"grids must end in ({cfg.grid}, {cfg.grid}), got shape {grids.shape}")
    if grids.size and (grids.min() < 0 or grids.max() >= cfg.colors):
        raise ValueError(f"grid colours must lie in [0, {cfg.colors})")
    out = _core.encode(cfg.core_dict(), grids.astype(np.uint8, copy=False))
    return out.reshape(grids.shape[:-2] + (cfg.patches_per_frame,))


def decode(cfg: NCAConfig, tokens: np.ndarray) -> np.ndarray:
    """Grids from patch tokens shaped (..., N): uint8 (..., grid, grid)."""
    tokens = np.asarray(tokens)
    if tokens.size and tokens.dtype.kind not in "iu":
        raise ValueError(f"tokens must hold integers, got dtype {tokens.dtype}")
    if tokens.shape[-1:] != (cfg.patches_per_frame,):
        raise ValueError(f"tokens must end in ({cfg.patches_per_frame},), got shape {tokens.shape}")
    out = _core.decode(cfg.core_dict(), tokens.astype(np.int64, copy=False))
    return out.reshape(tokens.shape[:-1] + (cfg.grid, cfg.grid))


def complexity(data: np.ndarray | bytes) -> float:
    """Gzip ratio len(gzip.compress(b, 9)) / len(b); arrays are taken as little-endian int32 tokens."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        arr = np.asarray(data)
        # A float or an id past int32 would otherwise be cast silently (1.7 -> 1, 2**32 + 5 -> 5).
        if arr.size and arr.dtype.kind not in "iu":
            raise ValueError(f"complexity takes bytes or integer tokens, got dtype {arr.dtype}")
        if arr.size and (int(arr.min()) < -(2**31) or int(arr.max()) >= 2**31):
            raise ValueError("complexity takes tokens in int32 range [-2**31, 2**31)")
        data = np.ascontiguousarray(arr, dtype="<i4").tobytes()
    if len(data) == 0:
        raise ValueError("complexity of empty data is undefined")
    return _core.gzip_size(bytes(data)) / len(data)


def split_inputs_targets(tokens: "np.ndarray | torch.Tensor", cfg: NCAConfig) -> "tuple[torch.Tensor, torch.Tensor]":
    """(inputs, targets) int64 from (n, seq_len + 1) tokens; targets inside the first frame are -100."""
    import torch

    t = torch.as_tensor(tokens).long()
    inputs = t[:, :-1].contiguous()
    targets = t[:, 1:].clone()
    targets[:, : cfg.frame_len - 1] = IGNORE_INDEX  # the first frame is context only
    return inputs, targets


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
        self._cuda = None
        if self.device.type == "cuda":
            from ncalm.cuda_backend import CudaGenerator  # raises a clear error without GPU/CUDA build

            self._cuda = CudaGenerator(cfg, self.seed, self.device, threads=self.threads)

    def sequences(self, start: int, count: int) -> np.ndarray:
        """Tokens of sequences start..start+count-1 as int32 (count, seq_len + 1); position unchanged."""
        return sequence_tokens(self.cfg, self.seed, np.arange(start, start + count), threads=self.threads)

    def batch(self, n: int) -> "tuple[torch.Tensor, torch.Tensor]":
        """The next n sequences as (inputs, targets), int64 tensors (n, seq_len) on self.device."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer")
        # int64 tokens, then inputs and targets: three copies
        check_fits(3 * n * (self.cfg.seq_len + 1) * 8, f"n={n:,}")
        import torch

        ids = np.arange(self.position, self.position + n, dtype=np.uint64)
        if self._cuda is not None:
            tokens = self._cuda.tokens(ids)
        else:
            tokens = torch.from_numpy(sequence_tokens(self.cfg, self.seed, ids, threads=self.threads, dtype=np.int64))
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
        if self._cuda is not None:
            from ncalm.cuda_backend import as_target

            n = as_target(out).shape[0]
            self._cuda.generate_into(out, start=self.position, stream=stream)
        else:
            import torch

            if stream is not None:
                raise ValueError("stream is for device='cuda'; this generator runs on the CPU")
            if isinstance(out, torch.Tensor):
                if out.device.type != "cpu":
                    raise ValueError(f"out lives on {out.device}, this generator on the CPU")
                host = out.numpy()  # shares out's memory
            elif isinstance(out, np.ndarray):
                host = out
            else:
                raise TypeError(f"out must be a numpy array or a CPU torch tensor, got {type(out).__name__}")
            n = host.shape[0] if host.ndim else 0
            sequence_tokens(self.cfg, self.seed, np.arange(self.position, self.position + n), threads=self.threads,
                            out=host)
        self.position += n
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
