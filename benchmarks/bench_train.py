"""Training throughput of the tiny preset on CPU (tokens/s), with pytest-benchmark.

    pytest benchmarks/bench_train.py --benchmark-only

Measures whole optimizer steps (forward, backward, clipping, AdamW) on a
fixed batch, so the number is the model's cost, not the data source's.
"""
import pytest
import torch

from ncalm.lm.model import LlamaLM, model_config
from ncalm.train.config import OptimConfig
from ncalm.train.optim import build_optimizer

BATCH, SEQ = 8, 256


@pytest.mark.parametrize("vocab", [257, 258])  # byte text; NCA with 4 colours and 2x2 patches
@pytest.mark.parametrize("threads", [1, 2])
def test_tiny_cpu_training_tokens_per_second(benchmark, vocab, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LlamaLM(model_config("tiny", vocab_size=vocab, max_seq_len=SEQ))
    opt = build_optimizer(model, OptimConfig())
    x = torch.randint(0, vocab, (BATCH, SEQ))

    def step():
        _, loss = model(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # allocate optimizer state outside the measurement
    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)
    tokens_per_s = BATCH * SEQ / benchmark.stats.stats.mean
    benchmark.extra_info["tokens_per_s"] = round(tokens_per_s)
    print(f"\ntiny preset, vocab {vocab}, {threads} thread(s): {tokens_per_s:,.0f} tokens/s")
    assert tokens_per_s > 0
