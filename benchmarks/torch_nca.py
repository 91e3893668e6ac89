"""A plain, batched PyTorch NCA generator: the in-run baseline of the benchmarks.

Written the way a user would write the method in PyTorch (and the way the
public JAX reference is written): one-hot grids, wrap padding on all three
axes, the 3x3 convolution as unfold + batched matmul with one rule per
simulation, Gumbel-max from torch's RNG, tokens by tensor arithmetic, and
gzip from Python's standard library for the complexity filter. Same
distribution as ncalm's generator (not the same random stream). Runs on CPU
or GPU.
"""
from __future__ import annotations

import gzip
from collections.abc import Iterator

import torch
import torch.nn.functional as F


def sample_rules(n: int, colors: int, gen: torch.Generator, device) -> tuple[torch.Tensor, ...]:
    """Flax lecun_normal: truncated normal (2 sigma) scaled to unit fan-in variance."""
    def lecun(shape, fan_in):
        w = torch.empty(shape, device=device)
        torch.nn.init.trunc_normal_(w, 0.0, 1.0, -2.0, 2.0, generator=gen)
        return w * (fan_in ** -0.5 / 0.87962566103423978)

    cin = colors + 2
    return lecun((n, 9 * cin, 4), 9 * cin), lecun((n, 4, 16), 4), lecun((n, 16, colors), 16)


def initial_grids(n: int, grid: int, colors: int, gen: torch.Generator, device) -> torch.Tensor:
    mix = torch.randn(n, colors, generator=gen, device=device)
    probs = torch.softmax(mix, dim=-1)
    return torch.multinomial(probs, grid * grid, replacement=True, generator=gen).view(n, grid, grid)


def step(grids: torch.Tensor, rules, colors: int, temperature: float, gen: torch.Generator) -> torch.Tensor:
    n, H, W = grids.shape
    w1, w2, w3 = rules
    x = F.one_hot(grids, colors).float()                              # (n, H, W, C)
    x = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)               # colour axis wrap -> C + 2
    x = F.pad(x.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="circular")   # torus
    patches = F.unfold(x, 3)                                          # (n, (C+2)*9, H*W), channel-major
    patches = patches.view(n, colors + 2, 9, H * W).permute(0, 3, 2, 1).reshape(n, H * W, 9 * (colors + 2))
    h = torch.relu(torch.bmm(torch.bmm(patches, w1), w2))
    logits = torch.bmm(h, w3)                                         # (n, H*W, C)
    if temperature > 0:
        u = torch.rand(logits.shape, generator=gen, device=logits.device).clamp_(1e-12, 1 - 1e-7)
        logits = logits / temperature - torch.log(-torch.log(u))
    return logits.argmax(dim=-1).view(n, H, W)


def tokenize(grids: torch.Tensor, colors: int, patch: int) -> torch.Tensor:
    n, H, W = grids.shape
    p = grids.view(n, H // patch, patch, W // patch, patch).permute(0, 1, 3, 2, 4).reshape(n, -1, patch * patch)
    powers = colors ** torch.arange(patch * patch, device=grids.device)
    return (p.long() * powers).sum(-1)                                # (n, N)


def _token_frames(n: int, frames: int, grid: int, colors: int, patch: int, burn_in: int, temperature: float,
                  seed: int, device) -> Iterator[torch.Tensor]:
    """Patch tokens (n, N) of each recorded frame of n fresh rules: burn-in, then one step between frames."""
    gen = torch.Generator(device=device).manual_seed(seed)
    rules = sample_rules(n, colors, gen, device)
    grids = initial_grids(n, grid, colors, gen, device)
    for _ in range(burn_in):
        grids = step(grids, rules, colors, temperature, gen)
    for k in range(frames):
        if k:
            grids = step(grids, rules, colors, temperature, gen)
        yield tokenize(grids, colors, patch)


@torch.no_grad()
def sequences(n: int, seq_len: int = 1024, grid: int = 12, colors: int = 10, patch: int = 2, burn_in: int = 10,
              temperature: float = 1e-4, seed: int = 0, device="cpu") -> torch.Tensor:
    """(n, seq_len + 1) tokens: frames [START, patches, END] after burn-in, a fresh rule per sequence."""
    vocab = colors ** (patch * patch)
    frame_len = (grid // patch) ** 2 + 2
    out = []
    for toks in _token_frames(n, -(-(seq_len + 1) // frame_len), grid, colors, patch, burn_in, temperature, seed,
                              device):
        start = torch.full((n, 1), vocab, device=device, dtype=toks.dtype)
        out.append(torch.cat([start, toks, start + 1], dim=1))
    return torch.cat(out, dim=1)[:, : seq_len + 1]


@torch.no_grad()
def score_rules(n: int, grid: int = 12, colors: int = 10, patch: int = 2, burn_in: int = 10, frames: int = 10,
                temperature: float = 1e-4, seed: int = 0, device="cpu") -> list[float]:
    """gzip ratio of each of n fresh candidate rules (rollouts batched, gzip per rule in Python)."""
    toks = list(_token_frames(n, frames, grid, colors, patch, burn_in, temperature, seed, device))
    raw = torch.cat(toks, dim=1).to(torch.int32).cpu().numpy().astype("<i4")
    return [len(gzip.compress(r.tobytes(), 9)) / r.nbytes for r in raw]
