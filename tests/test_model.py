import math

import pytest
import torch
import torch.nn.functional as F

from ncalm.lm.model import SIZES, KVCache, LlamaLM, ModelConfig, model_config



def tiny(vocab=50, seq=64, seed=0):
    torch.manual_seed(seed)
    return LlamaLM(model_config("tiny", vocab_size=vocab, max_seq_len=seq)).eval()


def test_loss_is_mean_cross_entropy_over_scored_targets():
    m = tiny()
    x = torch.randint(0, 50, (3, 16))
    y = torch.randint(0, 50, (3, 16))
    y[:, :5] = -100
    logits, loss = m(x, y)
    assert logits.shape == (3, 16, 50)
    keep = y != -100
    expected = F.cross_entropy(logits[keep], y[keep])
    assert torch.allclose(loss, expected)
    assert m(x)[1] is None


def test_untrained_loss_is_near_uniform():
    m = tiny(vocab=257)
    _, loss = m(torch.randint(0, 257, (4, 32)), torch.randint(0, 257, (4, 32)))
    assert abs(loss.item() - math.log(257)) < 0.1


def test_causal_future_tokens_do_not_change_past_logits():
    m = tiny()
    x = torch.randint(0, 50, (2, 20))
    x2 = x.clone()
    x2[:, 12:] = (x2[:, 12:] + 7) % 50
    a, _ = m(x)
    b, _ = m(x2)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("chunks", [[20], [1] * 20, [7, 1, 12], [5, 5, 5, 5]])
def test_kv_cache_matches_full_recomputation(chunks):
    m = tiny()
    x = torch.randint(0, 50, (2, 20))
    full, _ = m(x)
    cache = m.new_cache(2, 24)
    assert isinstance(cache, KVCache) and cache.length == 0
    outs, pos = [], 0
    for n in chunks:
        outs.append(m(x[:, pos:pos + n], cache=cache)[0])
        pos += n
        assert cache.length == pos
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


def test_kv_cache_overflow_is_an_error():
    m = tiny()
    cache = m.new_cache(1, 4)
    with pytest.raises(ValueError, match="overflow"):
        m(torch.zeros(1, 5, dtype=torch.long), cache=cache)


def test_config_validation_names_the_parameter():
    with pytest.raises(ValueError, match="n_head"):
        ModelConfig(d_model=64, n_head=5)
    with pytest.raises(ValueError, match="vocab_size"):
        ModelConfig(vocab_size=0)
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        model_config("huge")


def test_presets_span_tiny_to_paper_and_round_trip():
    paper = model_config("paper", vocab_size=32000)
    assert (paper.n_layer, paper.d_model) == (24, 2048)
    assert "tiny" in SIZES
    cfg = model_config("tiny", vocab_size=10)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    # Untied head: separate tensors.
    m = LlamaLM(cfg)
    assert m.head.weight.data_ptr() != m.embed.weight.data_ptr()
    assert cfg.n_params() - cfg.n_params(non_embedding=True) == 2 * 10 * cfg.d_model


def test_rotary_frequencies_stay_float32_when_the_model_is_cast():
    m = LlamaLM(model_config("tiny", vocab_size=50, max_seq_len=64))
    cos32, _ = m._rope(2000, 4, "cpu")
    m.to(torch.bfloat16)
    cos16, _ = m._rope(2000, 4, "cpu")
    assert torch.equal(cos16, cos32)
