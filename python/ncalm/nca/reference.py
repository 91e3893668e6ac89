"""A slow, plain-numpy NCA generator, written from docs/nca-semantics.md for clarity.

It is the yardstick the compiled core is tested against (the benchmarks
divide by ncalm/torch_nca.py instead, a batched PyTorch NCA): the same
Philox counters and stream layout as ncacore, but textbook numpy everywhere
else (one-hot, np.pad(mode="wrap") on all three axes, full Gumbel-max with
np.log, np.exp, gzip from the standard library). Batched over simulations,
never optimised beyond that. Being textbook, its weights and logits can
differ from the core's in the last bit, so a float near-tie may go the other
way (rare: see docs/nca-semantics.md).
"""
from __future__ import annotations

import gzip

import numpy as np

from ncalm.nca.config import NCAConfig

# Counter domains (ncacore/include/ncacore/philox.hpp).
RULE, TRAIN_MIX, TRAIN_CELLS, TRAIN_NOISE, SCORE_MIX, SCORE_CELLS, SCORE_NOISE = range(1, 8)
ATTEMPT_SHIFT = 40
_MASK = np.uint64(0xFFFFFFFF)


def philox(seed: int, domain: int, index, a, b) -> np.ndarray:
    """Philox4x32-10 of counter (index lo, domain<<24 | index hi, a, b): uint32 (..., 4)."""
    index, a, b = (np.asarray(x, dtype=np.uint64) for x in (index, a, b))
    index, a, b = np.broadcast_arrays(index, a, b)
    c0 = index & _MASK
    c1 = (np.uint64(domain) << np.uint64(24)) | ((index >> np.uint64(32)) & np.uint64(0xFFFFFF))
    c2, c3 = a & _MASK, b & _MASK
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK
        k0 = (k0 + np.uint64(0x9E3779B9)) & _MASK
        k1 = (k1 + np.uint64(0xBB67AE85)) & _MASK
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def uniform_open(bits: np.ndarray) -> np.ndarray:
    """Uniform floats in (0, 1): odd multiples of 2**-24."""
    return ((((bits >> 9) << 1) | 1).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)


def erfinv(x: np.ndarray) -> np.ndarray:
    """Giles' single-precision erfinv (the approximation ncacore uses)."""
    x = x.astype(np.float32)
    w = -np.log((np.float32(1) - x) * (np.float32(1) + x))
    central = [2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
               -0.00125372503, -0.00417768164, 0.246640727, 1.50140941]
    tail = [-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
            -0.0076224613, 0.00943887047, 1.00167406, 2.83297682]

    def horner(t, coeffs):
        p = np.full_like(t, coeffs[0])
        for c in coeffs[1:]:
            p = np.float32(c) + p * t
        return p

    p = np.where(w < 5, horner(w - np.float32(2.5), central), horner(np.sqrt(w) - np.float32(3), tail))
    return (p * x).astype(np.float32)


def rule_weights(cfg: NCAConfig, seed: int, rule_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """conv1 (3, 3, Cin, 4), conv2 (4, 16), conv3 (16, C): lecun-normal truncated to 2 sigma."""
    cin = cfg.colors + 2 if cfg.colour_wrap else cfg.colors
    shapes = [(3, 3, cin, 4), (4, 16), (16, cfg.colors)]
    fan_in = [9 * cin, 4, 16]
    out = []
    for layer, (shape, fan) in enumerate(zip(shapes, fan_in)):
        j = np.arange(int(np.prod(shape)))
        bits = philox(seed, RULE, rule_id, layer, j // 4)[j, j % 4]
        u = uniform_open(bits)
        z = np.float32(np.sqrt(2)) * erfinv(np.float32(0.954499736103642) * (np.float32(2) * u - np.float32(1)))
        scale = np.float32(1.0 / np.sqrt(fan) / 0.87962566103423978)
        out.append((np.clip(z, -2, 2) * scale).astype(np.float32).reshape(shape))
    return tuple(out)


def initial_grid(cfg: NCAConfig, seed: int, sim_id: int, scoring: bool = False) -> np.ndarray:
    """Colour mix ~ N(0, 1) per simulation, then i.i.d. cells from softmax(mix)."""
    mix_domain, cells_domain = (SCORE_MIX, SCORE_CELLS) if scoring else (TRAIN_MIX, TRAIN_CELLS)
    c = np.arange(cfg.colors)
    u = uniform_open(philox(seed, mix_domain, sim_id, 0, c // 4)[c, c % 4])
    mix = np.float32(np.sqrt(2)) * erfinv(np.float32(2) * u - np.float32(1))
    cdf = np.cumsum(np.exp(mix - mix.max()).astype(np.float32), dtype=np.float32)
    cells = np.arange(cfg.grid * cfg.grid)
    u = uniform_open(philox(seed, cells_domain, sim_id, 0, cells // 4)[cells, cells % 4]) * cdf[-1]
    colour = np.minimum((u[:, None] >= cdf[None, :]).sum(axis=1), cfg.colors - 1)
    return colour.reshape(cfg.grid, cfg.grid).astype(np.uint8)


def logits(cfg: NCAConfig, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(H, W, C) logits: one-hot, wrap-pad all three axes, valid 3x3 conv, ReLU MLP (float64 math)."""
    onehot = np.eye(cfg.colors)[grid]
    pad = ((1, 1), (1, 1), (1, 1)) if cfg.colour_wrap else ((1, 1), (1, 1), (0, 0))
    x = np.pad(onehot, pad, mode="wrap")
    H = W = cfg.grid
    h1 = sum(x[dy:dy + H, dx:dx + W] @ w1[dy, dx].astype(np.float64) for dy in range(3) for dx in range(3))
    return np.maximum(h1 @ w2, 0) @ w3


def step(cfg: NCAConfig, w, grid: np.ndarray, seed: int, sim_id: int, step_no: int,
         scoring: bool = False) -> np.ndarray:
    """One step: full Gumbel-max over (logits + bias on the current colour) / T; T = 0 is argmax."""
    z = logits(cfg, *w, grid).astype(np.float32)
    z = z + np.float32(cfg.identity_bias) * np.eye(cfg.colors, dtype=np.float32)[grid]
    if cfg.temperature == 0:
        return z.argmax(axis=-1).astype(np.uint8)
    z = z / np.float32(cfg.temperature)
    blocks = (cfg.colors + 3) // 4
    cells = np.arange(cfg.grid * cfg.grid)[:, None]
    c = np.arange(cfg.colors)[None, :]
    bits = philox(seed, SCORE_NOISE if scoring else TRAIN_NOISE, sim_id, step_no, cells * blocks + c // 4)
    u = np.take_along_axis(bits, np.broadcast_to(c % 4, bits.shape[:-1])[..., None], axis=-1)[..., 0]
    g = -np.log(-np.log(uniform_open(u)))
    return (z.reshape(-1, cfg.colors) + g).argmax(axis=-1).reshape(grid.shape).astype(np.uint8)


def trajectory(cfg: NCAConfig, seed: int, rule_id: int, sim_id: int, frames: int, scoring: bool = False) -> np.ndarray:
    """Frames k = 0..frames-1, each the grid after burn_in + k*dT steps."""
    w = rule_weights(cfg, seed, rule_id)
    grid = initial_grid(cfg, seed, sim_id, scoring)
    out, n = [], 0
    for k in range(frames):
        for _ in range(cfg.burn_in if k == 0 else cfg.dT):
            n += 1
            grid = step(cfg, w, grid, seed, sim_id, n, scoring)
        out.append(grid)
    return np.stack(out)


def patch_tokens(cfg: NCAConfig, grid: np.ndarray) -> np.ndarray:
    """Row-major patches; inside a patch, digit j = r*p + c holds colour (r, c)."""
    p, C, n = cfg.patch, cfg.colors, cfg.grid // cfg.patch
    tokens = []
    for py in range(n):
        for px in range(n):
            digits = grid[py * p:(py + 1) * p, px * p:(px + 1) * p].reshape(-1).astype(np.int64)
            tokens.append(int(sum(int(d) * C**j for j, d in enumerate(digits))))
    return np.array(tokens, dtype=np.int64)


def score(cfg: NCAConfig, seed: int, rule_id: int) -> float:
    """Complexity of a rule: its own scoring simulation, score_frames frames, gzip ratio of the int32 tokens."""
    frames = trajectory(cfg, seed, rule_id, rule_id, cfg.score_frames, scoring=True)
    raw = np.concatenate([patch_tokens(cfg, f) for f in frames]).astype("<i4").tobytes()
    return len(gzip.compress(raw, 9)) / len(raw)


def find_rule(cfg: NCAConfig, seed: int, seq_id: int) -> int:
    """First candidate of seq_id's stream strictly inside the band."""
    if cfg.band is None:
        return seq_id
    for attempt in range(cfg.max_attempts):
        rid = seq_id | (attempt << ATTEMPT_SHIFT)
        if cfg.band[0] < score(cfg, seed, rid) < cfg.band[1]:
            return rid
    raise RuntimeError("no rule in band")


def sequence(cfg: NCAConfig, seed: int, seq_id: int) -> np.ndarray:
    """seq_len + 1 tokens: frames [START, patches, END] of training simulation seq_id."""
    frames = trajectory(cfg, seed, find_rule(cfg, seed, seq_id), seq_id, cfg.frames_per_sequence)
    toks = [np.concatenate([[cfg.start_token], patch_tokens(cfg, f), [cfg.end_token]]) for f in frames]
    return np.concatenate(toks)[: cfg.seq_len + 1]
