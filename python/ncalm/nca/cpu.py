"""The CPU backend and the NCA functions of the compiled core (ncalm._core), with their argument checks.

Every sequence is a pure function of (config, seed, sequence id): its
simulation is `seq_id`, its rule the first in-band candidate of `seq_id`'s own
candidate stream. So any slice of a stream can be produced independently,
which is what sharding and exact resumption build on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from ncalm import _core
from ncalm.memory import check_fits
from ncalm.nca.config import NCAConfig
from ncalm.settings import SettingError

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
    arr = np.atleast_1d(ids)
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
    _check_workspace(cfg, threads, seq.size)
    _core.generate(cfg.core, _seed(seed), seq, rules, out, _threads(threads))
    return out


def find_rules(
    cfg: NCAConfig, seed: int, ids: Iterable[int] | np.ndarray, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """First in-band candidate rule of each id's candidate stream: (rule_ids uint64, ratios).

    Without a band, rule i of stream i is returned and the ratios are NaN.
    """
    ids = _ids("ids", ids, MAX_SEQ_ID)
    _check_workspace(cfg, threads, ids.size)
    return _core.find_rules(cfg.core, _seed(seed), ids, _threads(threads))


def check_band(cfg: NCAConfig, seed: int, threads: int | None = None) -> None:
    """Refuse, as SettingError("band"), a band in which the first sequence finds no rule (a band that holds
    none): commands call it before they write anything, not to fail inside the generator mid-run. The
    message names the band and how to find a better one, not the internal id the search gave up on."""
    if cfg.band is None:
        return
    try:
        find_rules(cfg, seed, [0], threads)
    except ValueError as exc:
        if "no rule inside band" not in str(exc):  # the core's words; others (NCALM_ISA, ...) are not the band's
            raise
        raise SettingError("band", f"no rule of this NCA config scores inside ({cfg.band[0]:g}, {cfg.band[1]:g}) "
                                   f"({cfg.max_attempts:,} candidates tried): widen the band; `ncalm show` with "
                                   f"the same NCA settings plots this config's complexity distribution") from None


def score_rules(
    cfg: NCAConfig, seed: int, rule_ids: Iterable[int] | np.ndarray, threads: int | None = None
) -> np.ndarray:
    """Gzip complexity score of each rule (float64), from its own scoring simulation."""
    ids = _ids("rule_ids", rule_ids)
    _check_workspace(cfg, threads, ids.size)
    return _core.score_rules(cfg.core, _seed(seed), ids, _threads(threads))


def filter_rules(
    cfg: NCAConfig, seed: int, start: int, count: int, threads: int | None = None,
    score: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score candidate rules start..start+count-1; keep those strictly inside cfg.band.

    Returns (accepted rule ids, all ratios). ``score`` gives the scores instead of
    :func:`score_rules` (the GPU backend's).
    """
    if cfg.band is None:
        raise ValueError("filter_rules needs cfg.band=(lower, upper); it is None")
    for name, value in (("start", start), ("count", count)):
        if not _integer(value) or value < 0:
            raise ValueError(f"{name}={value!r} must be a non-negative integer")
    ids = _ids("rule ids", np.arange(int(start), int(start) + int(count), dtype=np.uint64))
    ratios = score(ids) if score else score_rules(cfg, seed, ids, threads)
    return ids[in_band(ratios, cfg.band)], ratios


def in_band(ratios: Iterable[float] | np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Which ratios lie strictly inside band = (lower, upper): the filter's rule (docs/nca-semantics.md)."""
    r = np.asarray(ratios, dtype=np.float64)
    return (r > band[0]) & (r < band[1])


def sample_rules(cfg: NCAConfig, seed: int, rule_ids: Iterable[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Weights of the given rules: conv1 (n, 3, 3, C+2, 4), conv2 (n, 4, 16), conv3 (n, 16, C)."""
    s = _seed(seed)
    ids = _ids("rule_ids", rule_ids)
    # Without ids, rule 0's weights give the empty arrays their shapes.
    weights = [_core.sample_rule(cfg.core, s, int(r)) for r in (ids if ids.size else [0])]
    return {name: np.stack([w[i] for w in weights])[:ids.size] for i, name in enumerate(("conv1", "conv2", "conv3"))}


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
    _check_workspace(cfg, threads, sims.size)
    return _core.rollout(cfg.core, _seed(seed), _ids("rule_ids", rule_ids), sims, frames, _threads(threads))


def workspace_bytes(cfg: NCAConfig, threads: int | None, items: int) -> int:
    """Memory the core's threads take to score or roll out ``items`` rules: a simulator each (about 48 B a cell)
    and the scorer's int32 tokens of score_frames frames."""
    threads = min(_threads(threads) or _core.default_threads(), max(items, 1))
    return threads * (48 * cfg.grid**2 + 4 * cfg.patches_per_frame * cfg.score_frames)


def _check_workspace(cfg: NCAConfig, threads: int | None, items: int) -> None:
    # The core allocates this per thread before any work: past the memory it ends in std::bad_alloc, or the OOM killer.
    check_fits(workspace_bytes(cfg, threads, items),
               f"nca.grid {cfg.grid}, nca.patch {cfg.patch}, nca.score_frames {cfg.score_frames} (per thread)")


def encode(cfg: NCAConfig, grids: np.ndarray) -> np.ndarray:
    """Patch tokens (no START/END) of grids shaped (..., grid, grid): int64 (..., N)."""
    grids = np.asarray(grids)
    if grids.size and grids.dtype.kind not in "iu":  # 9.99 would silently become colour 9
        raise ValueError(f"grids must hold integer colours, got dtype {grids.dtype}")
    if grids.shape[-2:] != (cfg.grid, cfg.grid):
        raise ValueError(f"grids must end in ({cfg.grid}, {cfg.grid}), got shape {grids.shape}")
    if grids.size and (grids.min() < 0 or grids.max() >= cfg.colors):
        raise ValueError(f"grid colours must lie in [0, {cfg.colors})")
    out = _core.encode(cfg.core, grids.astype(np.uint8, copy=False))
    return out.reshape(grids.shape[:-2] + (cfg.patches_per_frame,))


def decode(cfg: NCAConfig, tokens: np.ndarray) -> np.ndarray:
    """Grids from patch tokens shaped (..., N): uint8 (..., grid, grid)."""
    tokens = np.asarray(tokens)
    if tokens.size and tokens.dtype.kind not in "iu":
        raise ValueError(f"tokens must hold integers, got dtype {tokens.dtype}")
    if tokens.shape[-1:] != (cfg.patches_per_frame,):
        raise ValueError(f"tokens must end in ({cfg.patches_per_frame},), got shape {tokens.shape}")
    out = _core.decode(cfg.core, tokens.astype(np.int64, copy=False))
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


class CpuBackend:
    """The CPU side of the backend interface (see ncalm.nca.generator.backend): the compiled core's threads."""

    def __init__(self, cfg: NCAConfig, seed: int, threads: int | None = None) -> None:
        self.cfg, self.seed, self.threads = cfg, _seed(seed), _threads(threads)
        _check_workspace(cfg, threads, 1 << 30)  # every thread's, before a caller writes anything

    def find_rules(self, ids: Iterable[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return find_rules(self.cfg, self.seed, ids, self.threads)

    def tokens(self, ids: Iterable[int] | np.ndarray, rule_ids: Any = None) -> "torch.Tensor":
        """int64 tensor (len(ids), seq_len + 1)."""
        import torch

        return torch.from_numpy(sequence_tokens(self.cfg, self.seed, ids, rule_ids, self.threads, dtype=np.int64))

    def tokens_into(self, ids: Iterable[int] | np.ndarray, rule_ids: Any, out: np.ndarray) -> None:
        """Tokens of ids into the host array out (int32, int64 or uint16)."""
        sequence_tokens(self.cfg, self.seed, ids, rule_ids, self.threads, out=out)

    def generate_into(self, out: Any, *, start: int, stream: Any = None) -> int:
        """Sequences start.. into a C-contiguous numpy array or CPU tensor; returns how many."""
        import torch

        if stream is not None:
            raise ValueError("stream is for device='cuda'; this generator runs on the CPU")
        if isinstance(out, torch.Tensor):
            if out.device.type != "cpu":
                raise ValueError(f"out lives on {out.device}, this generator on the CPU")
            out = out.numpy()  # shares the tensor's memory
        elif not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array or a CPU torch tensor, got {type(out).__name__}")
        n = out.shape[0] if out.ndim else 0
        sequence_tokens(self.cfg, self.seed, np.arange(start, start + n), threads=self.threads, out=out)
        return n
