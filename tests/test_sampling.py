"""Decoding: KV-cache greedy == full recomputation, nucleus support,
determinism, stop strings and EOS."""
from types import SimpleNamespace

import random

import pytest
import torch

from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.sampling import SamplingConfig, generate, generate_ids, sample_next, stop_check, truncate_at_stop
from ncalm.lm.tokenizer import ByteTokenizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # float64 so that cached and uncached attention cannot disagree on an argmax tie
    m = LlamaLM(model_config("tiny", vocab_size=257, max_seq_len=64)).double().eval()
    with torch.no_grad():  # larger weights than the init: peaked, varied predictions
        for p in m.parameters():
            p.mul_(20.0 if p.dim() > 1 else 1.0)
    return m


def greedy_by_recomputation(model, prompt, steps):
    idx = torch.tensor([prompt])
    for _ in range(steps):
        logits, _ = model(idx)
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx[0, len(prompt):].tolist()


def test_cached_greedy_matches_full_recomputation(model):
    prompts = [[5, 17, 200, 3], [9, 9], [40, 41, 42, 43], [1]]
    got = generate_ids(model, prompts, max_new_tokens=20, temperature=0.0, batch_size=3)
    for prompt, ids in zip(prompts, got):
        assert ids == greedy_by_recomputation(model, prompt, 20)
    assert len({tuple(g) for g in got}) > 1, "model too degenerate to test anything"


def test_long_prompt_keeps_its_last_tokens(model):
    prompt = list(range(100))  # longer than max_seq_len=64
    got = generate_ids(model, [prompt], max_new_tokens=8)
    assert got[0] == greedy_by_recomputation(model, prompt[-(64 - 8):], 8)


def test_sampling_is_deterministic_per_seed(model):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return generate_ids(model, [[1, 2, 3]] * 6, max_new_tokens=12, temperature=1.0,
                            top_p=0.95, generator=g)

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a != c
    assert len({tuple(r) for r in a}) > 1  # rows of one batch differ


def test_tiny_top_p_is_greedy(model):
    g = torch.Generator().manual_seed(0)
    sampled = generate_ids(model, [[7, 8]] * 3, max_new_tokens=10, temperature=1.0,
                           top_p=1e-6, generator=g)
    assert sampled == [greedy_by_recomputation(model, [7, 8], 10)] * 3


def test_a_tiny_temperature_samples_the_top_token_not_nan():
    logits = torch.tensor([[1.0, 2.0, 3.0], [5.0, -2.0, 0.0]])
    for t in (1e-6, 1e-30, 1e-40):  # logits / 1e-40 overflow float32
        assert sample_next(logits, t, 1.0).tolist() == [2, 0]
        assert sample_next(logits, t, 0.5).tolist() == [2, 0]


def test_nucleus_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    drawn = sample_next(logits, temperature=1.0, top_p=0.6, generator=g)
    counts = torch.bincount(drawn, minlength=4).tolist()
    assert counts[2] == counts[3] == 0  # 0.5 < 0.6 needs token 1; 0.8 >= 0.6 stops there
    assert abs(counts[0] / 4000 - 0.5 / 0.8) < 0.03
    assert sample_next(logits[:2], 0.0, 1.0).tolist() == [0, 0]


class ScriptedModel(torch.nn.Module):
    """Emits the bytes of `script` one per step, whatever the prompt."""

    def __init__(self, script: list[int]):
        super().__init__()
        self.script = script
        self.cfg = SimpleNamespace(max_seq_len=512)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def new_cache(self, batch_size, max_len):
        return SimpleNamespace(length=0)

    def forward(self, idx, cache):
        B, T = idx.shape
        cache.length += T
        pos = cache.length - self.prompt_len
        logits = torch.full((B, T, 257), -1e9)
        logits[:, -1, self.script[min(pos, len(self.script) - 1)]] = 0.0
        return logits, None


def test_stop_strings_and_eos():
    tok = ByteTokenizer()
    script = tok.encode("x = 1\ndef g():\n    pass") + [tok.eos_id]
    model = ScriptedModel(script)
    model.prompt_len = 3
    cfg = SamplingConfig(max_new_tokens=50, stop=("\ndef",))
    assert generate(model, tok, ["abc"], cfg) == [["x = 1"]]
    assert generate(model, tok, ["abc"], SamplingConfig(max_new_tokens=50)) == \
        [["x = 1\ndef g():\n    pass"]]  # ends at EOS, which is not part of the text
    assert generate(model, tok, ["abc"], SamplingConfig(max_new_tokens=4)) == [["x = "]]


def test_looking_at_the_tokens_every_few_steps_changes_no_continuation(model):
    prompts = [[5, 17, 200, 3], [9, 9, 1, 2], [40, 41, 42, 43], [1, 2, 3, 4]]

    def run(check_every, **kw):
        return generate_ids(model, prompts, max_new_tokens=24, temperature=1.0, batch_size=4,
                            generator=torch.Generator().manual_seed(0), check_every=check_every, **kw)

    free = run(1)
    eos, stop_token = free[0][5], free[1][9]  # rows end at different steps, some not at all
    cases = [{}, {"eos_id": eos}, {"should_stop": lambda ids: ids[-1] == stop_token}]
    for kw in cases:
        got = [run(k, **kw) for k in (1, 3, 16, 24)]
        assert got[0] == got[1] == got[2] == got[3], kw
    assert len({len(g) for g in run(1, eos_id=eos, should_stop=cases[2]["should_stop"])}) > 1


def test_the_stop_check_finds_a_stop_string_when_the_whole_text_first_holds_it():
    tok, rng = ByteTokenizer(), random.Random(0)
    stops = ("\ndef", "→→→", "ü")  # 3 characters, 9 bytes: the tail must count bytes, not characters
    alphabet = "ab\ndef→→→→ ü"
    check = stop_check(tok, stops)
    for _ in range(200):
        ids = tok.encode("".join(rng.choice(alphabet) for _ in range(60)))
        full = [any(s in tok.decode(ids[:n]) for s in stops) for n in range(1, len(ids) + 1)]
        tail = [check(ids[:n]) for n in range(1, len(ids) + 1)]
        first = full.index(True) if True in full else None
        assert (tail.index(True) if True in tail else None) == first


def test_truncate_at_stop_takes_earliest():
    assert truncate_at_stop("a\n#b\ndef c", ["\ndef", "\n#"]) == "a"
    assert truncate_at_stop("plain", ["\n\n"]) == "plain"


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-1.0), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(max_new_tokens=64), "max_new_tokens"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments_name_the_parameter(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_ids(model, [[1]], **{"max_new_tokens": 4, **kwargs})
