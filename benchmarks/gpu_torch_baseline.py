"""A plain PyTorch implementation of the same NCA (the in-run baseline of
bench_gpu.py): batched grouped convolutions, one rule per sequence, Gumbel-max
sampling, patch tokens with START/END framing. Same computation and data
distribution as ncalm's kernels, but torch's RNG, so not bit-identical."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ncalm.config import NCAConfig


def _lecun(shape: tuple[int, ...], fan_in: int, device) -> torch.Tensor:
    w = torch.empty(shape, device=device)
    torch.nn.init.trunc_normal_(w, 0.0, 1.0, -2.0, 2.0)
    return w * (math.sqrt(1.0 / fan_in) / 0.87962566103423978)


@torch.no_grad()
def torch_sequences(cfg: NCAConfig, n: int, device: torch.device | str = "cuda") -> torch.Tensor:
    """n fresh sequences (n, seq_len + 1) int64: a rule and an initial grid each."""
    C, H, p = cfg.colors, cfg.grid, cfg.patch
    cin = C + 2 if cfg.colour_wrap else C
    w1 = _lecun((n * 4, cin, 3, 3), 9 * cin, device)
    w2 = _lecun((n * 16, 4, 1, 1), 4, device)
    w3 = _lecun((n * C, 16, 1, 1), 16, device)
    mix = torch.softmax(torch.randn(n, C, device=device), -1)
    grid = torch.multinomial(mix, H * H, replacement=True).view(n, H, H)

    def step(g: torch.Tensor) -> torch.Tensor:
        x = F.one_hot(g, C).permute(0, 3, 1, 2).float()
        if cfg.colour_wrap:
            x = torch.cat([x[:, -1:], x, x[:, :1]], 1)
        x = F.pad(x, (1, 1, 1, 1), mode="circular").reshape(1, n * cin, H + 2, H + 2)
        h = F.conv2d(x, w1, groups=n)
        h = F.relu(F.conv2d(h, w2, groups=n))
        logits = F.conv2d(h, w3, groups=n).view(n, C, H, H)
        logits = logits + cfg.identity_bias * F.one_hot(g, C).permute(0, 3, 1, 2)
        if cfg.temperature == 0:
            return logits.argmax(1)
        u = torch.rand_like(logits).clamp_(1e-7, 1 - 1e-7)
        return (logits / cfg.temperature - torch.log(-torch.log(u))).argmax(1)

    digits = C ** torch.arange(p * p, device=device)
    start = torch.full((n, 1), cfg.start_token, device=device)
    end = torch.full((n, 1), cfg.end_token, device=device)

    def frame(g: torch.Tensor) -> torch.Tensor:
        patches = g.view(n, H // p, p, H // p, p).permute(0, 1, 3, 2, 4).reshape(n, -1, p * p)
        return torch.cat([start, (patches * digits).sum(-1), end], 1)

    for _ in range(cfg.burn_in):
        grid = step(grid)
    frames = []
    for f in range(cfg.frames_per_sequence):
        if f:
            for _ in range(cfg.dT):
                grid = step(grid)
        frames.append(frame(grid))
    return torch.cat(frames, 1)[:, : cfg.seq_len + 1]
