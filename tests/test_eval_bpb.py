import math

import numpy as np
import pytest
import torch

from ncalm.eval.bpb import evaluate_lm, evaluate_tokens, token_bytes
from ncalm.lm.tokenizer import ByteTokenizer

DOCS = ["hello world\n", "h\u00e9llo \u2603 snow", "", "x" * 37]


class Uniform(torch.nn.Module):
    """Equal logits for every token: each prediction costs exactly ln(vocab) nats."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, idx, targets=None, cache=None):
        return torch.zeros(*idx.shape, self.vocab), None


class Bigram(torch.nn.Module):
    """Logits depend on the current token only, so the loss is computable without windows."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)

    def forward(self, idx, targets=None, cache=None):
        return self.table(idx), None


def test_uniform_model_known_bits_per_byte():
    n_bytes = sum(len(d.encode("utf-8")) for d in DOCS)
    assert n_bytes == 12 + 15 + 0 + 37  # é is 2 bytes, the snowman 3
    n_pred = n_bytes + len(DOCS)  # one byte token per byte plus one EOS per document
    r = evaluate_lm(Uniform(257), ByteTokenizer(), DOCS, seq_len=5, batch_size=3)
    assert (r.tokens, r.bytes, r.documents) == (n_pred, n_bytes, len(DOCS))
    assert r.loss == pytest.approx(math.log(257))
    assert r.perplexity == pytest.approx(257)
    assert r.bits_per_byte == pytest.approx(n_pred * math.log2(257) / n_bytes)


@pytest.mark.parametrize("seq_len,batch_size", [(1, 1), (4, 2), (7, 16), (200, 1)])
def test_windows_cover_every_prediction_once(seq_len, batch_size):
    torch.manual_seed(0)
    model = Bigram(257)
    tok = ByteTokenizer()
    stream = [256]
    for d in DOCS:
        stream += list(d.encode("utf-8")) + [256]
    logp = torch.log_softmax(model.table.weight.detach().double(), dim=-1).numpy()
    expected = -sum(logp[a, b] for a, b in zip(stream[:-1], stream[1:]))
    r = evaluate_lm(model, tok, DOCS, seq_len=seq_len, batch_size=batch_size)
    assert r.nats == pytest.approx(expected, rel=1e-6)


def test_max_bytes_keeps_whole_documents():
    r = evaluate_lm(Uniform(257), ByteTokenizer(), DOCS, seq_len=8, max_bytes=13)
    assert (r.documents, r.bytes) == (2, 12 + 15)


def test_bad_input():
    with pytest.raises(ValueError, match="no text"):
        evaluate_lm(Uniform(257), ByteTokenizer(), ["", ""], seq_len=8)
    with pytest.raises(ValueError, match="seq_len"):
        evaluate_lm(Uniform(257), ByteTokenizer(), DOCS, seq_len=0)


def test_zero_is_refused_not_taken_for_the_default():
    model = Uniform(257)
    model.cfg = type("Cfg", (), {"max_seq_len": 16})()
    assert evaluate_lm(model, ByteTokenizer(), DOCS).tokens == 64 + len(DOCS)  # None: the model's length
    with pytest.raises(ValueError, match=r"seq_len must be in \[1, 16\].*got 0"):
        evaluate_lm(model, ByteTokenizer(), DOCS, seq_len=0)
    for cap in (0, -5):
        with pytest.raises(ValueError, match=f"max_bytes must be >= 1 or None.*got {cap}"):
            evaluate_lm(model, ByteTokenizer(), DOCS, max_bytes=cap)


def _byte_ids(docs):
    return np.array([i for d in docs for i in list(d.encode("utf-8")) + [256]], dtype=np.uint16)


def test_tokens_give_what_the_documents_give():
    docs = [d for d in DOCS if d]
    want = evaluate_lm(Uniform(257), ByteTokenizer(), docs, seq_len=5)
    got = evaluate_tokens(Uniform(257), ByteTokenizer(), _byte_ids(docs), seq_len=5)
    assert got == want
    # A stream that starts with EOS already gets no second one.
    again = evaluate_tokens(Uniform(257), ByteTokenizer(), np.r_[256, _byte_ids(docs)], seq_len=5)
    assert (again.tokens, again.bytes) == (want.tokens, want.bytes)


def test_token_cap_counts_bytes_even_inside_a_character():
    ids = _byte_ids(["h\u00e9llo", "x" * 30])  # 6 bytes, EOS, 30 bytes, EOS
    r = evaluate_tokens(Uniform(257), ByteTokenizer(), ids, seq_len=4, max_bytes=2)
    assert (r.bytes, r.tokens, r.documents) == (2, 2, 1)  # "h" and the first byte of "é": cut mid-character
    r = evaluate_tokens(Uniform(257), ByteTokenizer(), ids, seq_len=4, max_bytes=7)
    assert (r.bytes, r.tokens, r.documents) == (7, 8, 2)  # EOS counts no byte
    with pytest.raises(ValueError, match="token id 300 at position 1 is outside the tokenizer's vocabulary of 257"):
        evaluate_tokens(Uniform(301), ByteTokenizer(), np.array([65, 300]), seq_len=4)
    with pytest.raises(ValueError, match="no text"):
        evaluate_tokens(Uniform(257), ByteTokenizer(), np.array([256, 256]), seq_len=4)


def test_bpe_bytes_per_token_are_exact():
    pytest.importorskip("tokenizers")
    from ncalm.lm.tokenizer import BPETokenizer

    tok = BPETokenizer.train(["h\u00e9llo w\u00f6rld \u2603 " * 20, "def f(x): return x\n" * 20], 300)
    table = token_bytes(tok)
    text = "h\u00e9llo \u2603 \U0001F600 unseen \u00e9"  # the emoji's bytes were never merged
    assert table[tok.encode(text)].sum() == len(text.encode("utf-8"))
    assert table[tok.eos_id] == 0



@pytest.mark.parametrize("evaluate, data", [(evaluate_lm, DOCS), (evaluate_tokens, _byte_ids(DOCS))])
def test_progress_bar_counts_windows_on_stderr_only_when_asked(capsys, evaluate, data):
    evaluate(Uniform(257), ByteTokenizer(), data, seq_len=5, batch_size=3)
    assert capsys.readouterr() == ("", "")  # library callers and tests stay quiet by default
    evaluate(Uniform(257), ByteTokenizer(), data, seq_len=5, batch_size=3, progress=True)
    out, err = capsys.readouterr()
    # 64 bytes + 4 EOS = 68 predictions in windows of 5: 14 windows, all counted (batches of 3 and a last 2).
    assert out == "" and "bpb" in err and "14/14" in err


def test_a_blown_up_loss_has_infinite_perplexity_not_an_overflow():
    from ncalm.eval.bpb import LMEval

    r = LMEval(nats=2885.69 * 10, tokens=10, bytes=8, documents=1)  # a run trained at lr 30 without clipping
    assert r.perplexity == math.inf and r.to_dict()["perplexity"] == math.inf  # was OverflowError
    assert LMEval(nats=7.0, tokens=2, bytes=1, documents=1).perplexity == pytest.approx(math.exp(3.5))
