"""Sizes of the transformer (ModelConfig) and the named presets, kept free of
torch so that configs and `--help` load without it."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ncalm.fields import known_fields


@dataclass
class ModelConfig:
    """Sizes of a :class:`LlamaLM`. ``mlp_hidden=0`` means 8/3 * d_model rounded up to 64."""

    vocab_size: int = 258
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    mlp_hidden: int = 0
    max_seq_len: int = 1024  # the training context; rotary positions are computed on the fly, not capped
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise ValueError(
                f"ModelConfig.d_model={self.d_model} must be divisible by n_head={self.n_head} "
                "into an even head size (rotary embeddings rotate pairs)")
        if self.mlp_hidden < 0:
            raise ValueError(f"ModelConfig.mlp_hidden must be >= 0, got {self.mlp_hidden}")
        if self.mlp_hidden == 0:
            self.mlp_hidden = 64 * math.ceil(8 * self.d_model / 3 / 64)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**known_fields(cls, d))


# "paper" is the paper's 24 layers x 2048 width. With this model's default MLP (8/3 d,
# 5504 wide) and a 32k vocabulary it has 1.35B parameters (1.22B with the byte
# tokenizer), not the paper's 1.6B: the
# paper's MLP width and vocabulary are not known here (set mlp_hidden to match them).
PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_head=4, d_model=64),
    "mini": dict(n_layer=4, n_head=4, d_model=128),
    "small": dict(n_layer=6, n_head=6, d_model=384),
    "base": dict(n_layer=12, n_head=12, d_model=768),
    "large": dict(n_layer=24, n_head=16, d_model=1024),
    "paper": dict(n_layer=24, n_head=32, d_model=2048),
}


def model_config(preset: str, **overrides) -> ModelConfig:
    """The named preset with ``overrides`` (e.g. vocab_size, max_seq_len) applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[preset], **overrides})
