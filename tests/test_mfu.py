"""The MFU estimate: FLOPs per token from the model's own parameter count, and card peaks by name."""
import pytest
import torch

from ncalm.lm.model import LlamaLM, model_config
from ncalm.train.mfu import flops_per_token, matmul_params, mfu, peak_flops


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_matmul_params_are_the_models_weights_less_embedding_and_norms(size):
    cfg = model_config(size, vocab_size=1000)
    model = LlamaLM(cfg)
    norms = sum(p.numel() for name, p in model.named_parameters() if "norm" in name)
    assert matmul_params(cfg) == sum(p.numel() for p in model.parameters()) - model.embed.weight.numel() - norms


def test_flops_per_token_by_hand():
    # GPT-2 small's shape (12 x 768, 3072-wide MLP as h) at T = 1024: 6 N + 12 L d T.
    cfg = model_config("base", vocab_size=50304, mlp_hidden=2048)
    n = 12 * (4 * 768**2 + 3 * 768 * 2048) + 768 * 50304
    assert flops_per_token(cfg, 1024) == 6 * n + 12 * 12 * 768 * 1024
    # 1e5 tokens/s on a card of 1e15 FLOP/s peak
    assert mfu(cfg, 1024, 1e5, 1e15) == pytest.approx(flops_per_token(cfg, 1024) * 1e5 / 1e15)


def test_peaks_by_card_name():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("Some Future Card") is None


def test_the_matmul_flops_match_a_counted_forward_backward():
    """torch's FLOP counter over one training step: the matmuls are exactly 6 N per token. (It does not
    count the CPU's scaled_dot_product_attention, so the 12 L d T attention term is left out here.)"""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model_config("tiny", vocab_size=512, max_seq_len=128)
    model = LlamaLM(cfg)
    x = torch.randint(0, 512, (2, 128))
    with FlopCounterMode(display=False) as counter:
        model(x, x)[1].backward()
    assert counter.get_total_flops() / x.numel() == 6 * matmul_params(cfg)
    assert flops_per_token(cfg, 128) - 6 * matmul_params(cfg) == 12 * cfg.n_layer * cfg.d_model * 128
