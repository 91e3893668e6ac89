"""The transformer's shape (ModelConfig), the named model sizes, what a training stage
says about its model (ModelSpec: a size, overrides, and the checkpoint to start from),
and how it decodes (SamplingConfig). Free of torch, so that configs and `--help` load without it."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from ncalm.settings import Settings, SettingError, at_least, in_range, positive, setting, table


@dataclass
class ModelConfig(Settings):
    """Sizes of a :class:`~ncalm.lm.model.LlamaLM`."""

    vocab_size: int = setting(258, "tokens in the vocabulary (set by the data)", check=at_least(1))
    n_layer: int = setting(2, "transformer blocks", check=at_least(1))
    n_head: int = setting(4, "attention heads", check=at_least(1))
    d_model: int = setting(64, "residual stream width", check=at_least(1))
    mlp_hidden: int = setting(0, "SwiGLU hidden width; 0 = 8/3 x d_model rounded up to 64", check=at_least(0))
    max_seq_len: int = setting(1024, "the training context (rotary positions are not capped by it)",
                               check=at_least(1))
    rope_theta: float = setting(10000.0, "rotary embedding base", check=positive)
    norm_eps: float = setting(1e-5, "RMSNorm epsilon", check=positive)
    init_std: float = setting(0.02, "standard deviation of the initial weights", check=at_least(0))
    attn_dropout: float = setting(0.0, "dropout on the attention probabilities while training (the reference "
                                       "code: 0.1)", check=in_range(0, 1, open_high=True))

    def validate(self) -> None:
        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise SettingError("d_model", f"{self.d_model} must be divisible by n_head={self.n_head} into an even "
                                          "head size (rotary embeddings rotate pairs)")
        if self.mlp_hidden == 0:
            self.mlp_hidden = 64 * math.ceil(8 * self.d_model / 3 / 64)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def n_params(self, non_embedding: bool = False) -> int:
        """Parameters of the LlamaLM of this shape, counted without torch (``non_embedding``: without the
        embedding and the head, the count that does not depend on the vocabulary)."""
        d = self.d_model
        layers = self.n_layer * (4 * d * d + 3 * d * self.mlp_hidden + 2 * d) + d  # + the final norm
        return layers if non_embedding else layers + 2 * self.vocab_size * d


# "paper" is the paper's 24 layers x 2048 width. With this model's default MLP (8/3 d,
# 5504 wide) its layers hold 1.21B parameters; the reference code's MLP is 4 d = 8192
# wide (model.overrides.mlp_hidden, as the `paper` experiment preset sets it), which makes
# the paper's 1.6B (1.61B without embedding and head).
SIZES: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_head=4, d_model=64),
    "mini": dict(n_layer=4, n_head=4, d_model=128),
    "small": dict(n_layer=6, n_head=6, d_model=384),
    "base": dict(n_layer=12, n_head=12, d_model=768),
    "large": dict(n_layer=24, n_head=16, d_model=1024),
    "paper": dict(n_layer=24, n_head=32, d_model=2048),
}


def model_config(size: str, **overrides) -> ModelConfig:
    """The named size with ``overrides`` (e.g. vocab_size, max_seq_len) applied."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
    return ModelConfig(**{**SIZES[size], **overrides})


def _check_overrides(overrides: dict) -> str | None:
    known = {f.name for f in fields(ModelConfig)} - {"vocab_size"}
    if "vocab_size" in overrides:
        return ("vocab_size cannot be set: the vocabulary comes from the data (its tokenizer, or the NCA or "
                "Dyck alphabet)")
    unknown = sorted(set(overrides) - known)
    return f"unknown key(s) {unknown}; known: {', '.join(sorted(known))}" if unknown else None


# Part specs of transfer.reinit and transfer.freeze, and the parameters they select (ncalm.lm.transfer):
# a layer part in every layer, or in layer A or layers A to B (attn:A, attn:A-B), or a tensor outside the layers.
LAYER_PARTS = {"attn": r"attn\.(wq|wk|wv|wo)\.", "mlp": r"mlp\.(w1|w2|w3)\.", "norm": r"(attn_norm|mlp_norm)\.",
               "block": r""}
GLOBAL_PARTS = {"final_norm": "norm.weight", "embed": "embed.weight", "head": "head.weight"}
PARTS_HELP = "attn, mlp, norm or block (each optionally :A or :A-B, layers A to B), final_norm, embed or head"


def part_spec(spec: str) -> tuple[str, int | None, int | None]:
    """``(part, first layer, last layer)`` of a part spec, the layers None for all; ValueError says what a spec is."""
    part, colon, layers = spec.partition(":")
    if spec in GLOBAL_PARTS or (part in LAYER_PARTS and not colon):
        return part, None, None
    if part not in LAYER_PARTS:
        raise ValueError(f"{spec!r} is not a part: use {PARTS_HELP}")
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", layers)
    if not m or int(m[2] or m[1]) < int(m[1]):
        raise ValueError(f"{spec!r}: the layers after ':' must be A or A-B with A <= B")
    return part, int(m[1]), int(m[2] or m[1])


def _check_parts(specs: list[str]) -> str | None:
    for spec in specs:
        try:
            part_spec(spec)
        except ValueError as exc:
            return str(exc)
    return None


@dataclass
class TransferConfig(Settings):
    """Which tensors copied from ``model.init`` are re-initialised or frozen (part specs: ncalm.lm.transfer)."""

    reinit: list[str] = setting([], "also re-initialise PART (repeatable), e.g. attn, mlp:0-3, norm",
                                flags=("--reinit",), repeat=True, check=_check_parts)
    freeze: list[str] = setting([], "keep PART fixed during training (repeatable), e.g. attn:0-11",
                                flags=("--freeze",), repeat=True, check=_check_parts)
    keep_embeddings: bool = setting(False, "copy embedding and head too; the text is then tokenized with the "
                                           "init checkpoint's tokenizer", flags=("--keep-embeddings",))
    token_init: str = setting("model", "how the fresh embedding and head start after --init: model = N(0, "
                                       "init_std) like every weight; torch = nn.Embedding's N(0, 1) and nn.Linear's "
                                       "Kaiming-uniform, as the reference code re-initialises them",
                              choices=("model", "torch"))


@dataclass
class ModelSpec(Settings):
    """A stage's model: a named size with overrides, or the shape of the ``init`` checkpoint."""

    SHORTHAND = "size"

    size: str | None = setting(None, "model size: tiny, mini, small, base, large or paper; unset = tiny, or "
                                     "the init checkpoint's shape", flags=("--model",), choices=(*SIZES, None))
    overrides: dict = setting({}, "ModelConfig fields to change from the size's, e.g. {mlp_hidden = 8192}",
                              check=_check_overrides)
    init: str | None = setting(None, "checkpoint to start from (e.g. runs/prepretrain/checkpoint.pt), or a Hugging "
                                     "Face Llama folder; its transformer layers are copied, embedding and head "
                                     "start fresh", flags=("--init",))
    transfer: TransferConfig = table(TransferConfig, "transfer (--init)")

    def validate(self) -> None:
        t = self.transfer
        if (t.reinit or t.freeze or t.keep_embeddings) and not self.init:
            raise SettingError("transfer", "--reinit, --freeze and --keep-embeddings need --init CHECKPOINT")
        try:
            model_config(self.size or "tiny", **self.overrides)  # a shape the model can take
        except SettingError as exc:
            raise SettingError(f"overrides.{exc.key}", exc.message) from None


@dataclass(frozen=True)
class SamplingConfig(Settings):
    """Decoding settings."""

    temperature: float = setting(0.0, "sampling temperature; 0 = greedy (argmax)", check=at_least(0))
    top_p: float = setting(1.0, "nucleus sampling mass", check=in_range(0, 1, open_low=True))
    max_new_tokens: int = setting(256, "tokens generated at most", check=at_least(1))
    stop: tuple[str, ...] = setting((), "strings that end a completion",
                                    check=lambda v: None if all(v) else "stop strings must be non-empty")
    batch_size: int = setting(16, "sequences decoded together", check=at_least(1))
