"""A Llama-style decoder-only transformer in plain PyTorch.

RMSNorm pre-norm, rotary position embeddings, SwiGLU MLP,
``F.scaled_dot_product_attention`` and an untied output head. The same module
serves the NCA stage and the language stage; only ``vocab_size`` differs, so
transfer (ncalm.lm.transfer) swaps the embedding and head and keeps the rest.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.utils.checkpoint import checkpoint

from ncalm.lm.config import SIZES, ModelConfig, model_config  # noqa: F401  (re-exported)


class KVCache:
    """Keys and values of the tokens seen so far, for incremental decoding.

    ``k`` and ``v`` have shape (n_layer, B, n_head, max_len, head_dim); the
    first ``length`` positions are filled. The model advances ``length``.
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, max_len: int,
                 head_dim: int, device=None, dtype=None):
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[3]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32: bf16 squares lose too much precision.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, D) by position: pairs are (first half, second half) of D."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).type_as(x)


def inverse_frequencies(cfg: ModelConfig) -> torch.Tensor:
    """The rotary inverse frequencies rope_theta ** (-2i / head_dim), float32, on the CPU."""
    return 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim)


def rope(inv_freq: torch.Tensor, start: int, T: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, head_dim / 2) of positions start .. start + T - 1, for :func:`rotary`."""
    pos = torch.arange(start, start + T, device=device, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq.to(device))
    return freqs.cos(), freqs.sin()


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.attn_dropout
        self.wq = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None = None, layer: int = 0):
        T = x.shape[1]
        q, k, v = (rearrange(w(x), "b t (h d) -> b h t d", h=self.n_head) for w in (self.wq, self.wk, self.wv))
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            start, end = cache.length, cache.length + T
            cache.k[layer, :, :, start:end] = k
            cache.v[layer, :, :, start:end] = v
            k, v = cache.k[layer, :, :, :end], cache.v[layer, :, :, :end]
            # Query i sits at absolute position start + i and sees keys 0..start+i.
            mask = None
            if T > 1:
                qpos = torch.arange(start, end, device=x.device)[:, None]
                mask = torch.arange(end, device=x.device)[None, :] <= qpos
            y = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask)
        return self.wo(rearrange(y, "b h t d -> b t (h d)"))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.w2 = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin, cache=None, layer=0):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class LlamaLM(nn.Module):
    """Decoder-only language model. Parameter names: ``embed``, ``layers.{i}.*``, ``norm``, ``head``.

    ``checkpointing = True`` recomputes each block's activations in the backward pass instead of
    storing them (training only; the results are the same).
    """

    def __init__(self, cfg: ModelConfig, checkpointing: bool = False):
        super().__init__()
        self.cfg = cfg
        self.checkpointing = checkpointing
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("inv_freq", inverse_frequencies(cfg), persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.cfg.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        # Residual-branch outputs shrink with depth so the stream's variance stays O(1) (GPT-2).
        for block in getattr(self, "layers", []):
            if module is block.attn.wo or module is block.mlp.w2:
                nn.init.normal_(module.weight, mean=0.0, std=std / math.sqrt(2 * self.cfg.n_layer))

    def new_cache(self, batch_size: int, max_len: int, device=None, dtype=None) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` sequences of up to ``max_len`` tokens."""
        ref = self.head.weight
        return KVCache(self.cfg.n_layer, batch_size, self.cfg.n_head, max_len, self.cfg.head_dim,
                       device=device or ref.device, dtype=dtype or ref.dtype)

    def _rope(self, start: int, T: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float32:  # model.to(bfloat16) rounded it: cos off by 0.33 at position 2000
            inv_freq = inverse_frequencies(self.cfg)
        return rope(inv_freq, start, T, device)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None):
        """Logits (B, T, vocab) and the mean cross entropy over targets != -100 (or None)."""
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if cache is not None and start + T > cache.max_len:
            raise ValueError(f"KV cache overflow: {start} cached + {T} new > max_len {cache.max_len}")
        cos, sin = self._rope(start, T, idx.device)
        x = self.embed(idx)
        recompute = self.checkpointing and cache is None and torch.is_grad_enabled()
        for i, layer in enumerate(self.layers):
            if recompute:  # non-reentrant: works with autocast, torch.compile and inputs that need no grad
                x = checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin, cache, i)
        logits = self.head(self.norm(x))
        if cache is not None:
            cache.length = start + T
        loss = None if targets is None else F.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                                            targets.reshape(-1), ignore_index=-100)
        return logits, loss

