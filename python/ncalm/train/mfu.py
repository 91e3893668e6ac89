"""Model FLOPs utilisation (MFU): training FLOPs per token over the card's dense bf16 peak.

The estimate is nanoGPT's ``estimate_mfu`` (the PaLM paper's appendix B):
``6 N + 12 L d T`` FLOPs per token, where N counts the weights that take part
in a matrix multiply (attention, MLP and the output head; the input embedding
is a lookup, the norms are elementwise), L is the layer count, d the model
width and T the context. The first term is the forward and backward matmuls
(2 + 4 FLOPs per weight), the second the attention scores and their weighted
sum. Torch-free, so the benchmark's report and the unit tests need no GPU.
"""
from __future__ import annotations

from ncalm.lm.config import ModelConfig

# Dense (no 2:4 sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, in FLOP/s;
# the first name that occurs in torch.cuda.get_device_name() wins, so the longer names come first.
DENSE_BF16_PEAK = {
    "H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "H200": 989e12, "GH200": 989e12,
    "B200": 2250e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "A10": 125e12,
}


def matmul_params(cfg: ModelConfig) -> int:
    """Weights used in matrix multiplies: per layer q, k, v, o (4 d^2) and SwiGLU (3 d h), plus the head."""
    d = cfg.d_model
    return cfg.n_layer * (4 * d * d + 3 * d * cfg.mlp_hidden) + d * cfg.vocab_size


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training FLOPs (forward and backward) per token at context ``seq_len``."""
    return 6 * matmul_params(cfg) + 12 * cfg.n_layer * cfg.d_model * seq_len


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of the card named ``device_name`` (torch.cuda.get_device_name), or None if unknown."""
    return next((peak for name, peak in DENSE_BF16_PEAK.items() if name in device_name), None)


def mfu(cfg: ModelConfig, seq_len: int, tokens_per_s: float, peak: float) -> float:
    """The fraction of ``peak`` FLOP/s that ``tokens_per_s`` training tokens a second use."""
    return flops_per_token(cfg, seq_len) * tokens_per_s / peak
