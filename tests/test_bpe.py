"""The compiled GPT-2 BPE (ncalm._core.BytePairEncoder via ncalm.data.bpe) against its reference, tiktoken:
the same ids as ``encode_ordinary`` on fixture, hand-written and random text, and the same character class
for every code point."""
from __future__ import annotations

import gzip
import os
import random
import re
import threading
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ncalm import _core
from ncalm.data import bpe
from ncalm.data import tokenize as tk

tiktoken = pytest.importorskip("tiktoken")
from tiktoken_ext.openai_public import r50k_pat_str

FIXTURES = Path(__file__).parent / "fixtures"
GPT2_DIRS = [os.environ.get(tk.GPT2_FILES_ENV, ""), "/work/shared/data/gpt2"]
GPT2_ROOT = next((d for d in GPT2_DIRS if d and Path(d, "vocab.bpe").is_file()), None)

# Each alternative of the r50k pattern, its edges and the characters where Unicode classes matter.
EDGE_CASES = [
    "", " ", "a", "'", "''", "'s", "it's", "IT'S", "I'S", "you'll've'd", "'sa", "x''s", "!'s", " 's", "don't!",
    "rock'n'roll", "'ll 've 're 'm 'd 't", "'LL", "ca'", "'\n",
    "  hello", "   hello", "\t\thello", "\n\nhello", " \n hello", "\r\nhello\r\n", "a  \n  b", "a \t b", "trailing   ",
    "trailing\n\n", "\t", "\n", "  ", " \n", "x\n \n", "a\r\n\r\nb", "\t\n\x0b\x0c\r x",
    "123 4567 89012", " 1 2  3", "x1y2", "3.14159", "1,000,000", "  42", "0x1F",
    "!!! ??? ...", " !!!", "(a)[b]{c}", "--x--", "$$$5", "a.b.c", "#!/bin/sh", "<|endoftext|>", " <|endoftext|>x",
    "\u00a0x", "x\u00a0\u00a0y", "a\u0085b", " \u0085 b", "a\u2028b", "a\u2029\u2029b", "\u3000日本\u3000",
    "a\u001cb", "a \u001c b", "\u001f\u001e", "a\u200bb", "\ufeffx", "\u1680x\u180ey", "\u2000\u200a\u202f\u205fz",
    "日本語のテキストです。", "中文，标点！", "😀👍🏽🇫🇷 ok", "héllo wörld", "cafe\u0301 nai\u0308ve", "Ωmega ж ß İı",
    "السلام عليكم ٣٤٥", "Ⅻ ½ ² ①", "mixed日本abc123!?😀", "ﬁ ﬀ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0001E030\U0001E031 a\U0001E030b",
    "\u0378\u0379 x", "\ue000\U000F0000 private", "\x00\x01\x7f",
    "a" * 3000, " " * 2000 + "x", "ab" * 1500, "\n" * 500, "é" * 700, "😀" * 300,
]

ALPHABET = (list("aAeEiIoOuUsStTlLvVdDmMrRxyz0123456789'!.,-_()$#\"") + [" "] * 8 + ["\t", "\n", "\r", "\n\n", "\r\n"]
            + ["'s", "'ll", "'ve", "'re", "'S", " the", "  ", "   "]
            + list("\u00a0\u0085\u2028\u2029\u3000\u1680\u2009\u001c\u001d\u200b\ufeff")
            + list("éÉßΩωжЖ日本語中😀👍🏽\u0301\u0308٣٤ⅫⅣ½²①ﬁ𝔘\ue000") + ["\U0001E030", "\u0378"])


def fuzz_strings(n: int, seed: int = 0) -> list[str]:
    """Short strings over a mixed alphabet: letters, digits, contractions, every kind of space, scripts."""
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(n)]


def fixture_text() -> str:
    parts = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.rglob("*"))
             if p.suffix in (".txt", ".json", ".jsonl", ".md")]
    parts += [gzip.decompress(p.read_bytes()).decode("utf-8") for p in sorted(FIXTURES.rglob("*.gz"))]
    assert sum(map(len, parts)) > 100_000
    return "".join(parts)


def trained_ranks(text: str, merges: int = 300, seed: int = 0) -> dict[bytes, int]:
    """A small byte-level BPE vocabulary learned from ``text`` (most frequent pair first), single bytes
    ranked in a shuffled order as data-gym files rank them in their own: nothing may assume id == byte."""
    order = list(range(256))
    random.Random(seed).shuffle(order)
    ranks = {bytes([b]): r for r, b in enumerate(order)}
    words = Counter(re.findall(r" ?[^\W\d_]+| ?\d+| ?[^\w\s]+|\s+", text))
    seqs = {w: [bytes([b]) for b in w.encode()] for w in words}
    for _ in range(merges):
        pairs: Counter = Counter()
        for w, seq in seqs.items():
            for pair in zip(seq, seq[1:]):
                pairs[pair] += words[w]
        if not pairs:
            break
        (a, b), _ = pairs.most_common(1)[0]
        ranks[a + b] = len(ranks)
        for w, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = out
    return ranks


@pytest.fixture(scope="module", params=["trained", "gpt2"])
def encoding(request):
    """A tiktoken Encoding with GPT-2's pattern: ranks learned here from fixture and fuzz text, or GPT-2's own."""
    if request.param == "gpt2":
        if GPT2_ROOT is None:
            pytest.skip(f"GPT-2's BPE files not found (set {tk.GPT2_FILES_ENV})")
        return tk.data_gym_encoding(Path(GPT2_ROOT), hashes=tk.GPT2_HASHES)
    ranks = trained_ranks(fixture_text()[:20_000] + "".join(fuzz_strings(1000, seed=1)))
    return tiktoken.Encoding("trained", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={tk.EOS_TEXT: len(ranks)})


@pytest.fixture(scope="module")
def encoder(encoding):
    return bpe.GPT2Encoder(encoding)


def assert_same(encoder, encoding, texts):
    for text in texts:
        ours = encoder.encode(text)
        assert ours.dtype == np.uint32
        assert ours.tolist() == encoding.encode_ordinary(text), repr(text)


def test_fixture_text_gives_tiktokens_ids(encoder, encoding):
    text = fixture_text()
    assert encoder._core.encode(text) is not None  # all of it encoded by the core, no fallback
    assert_same(encoder, encoding, [text, text])  # the second time from the cache


def test_edge_cases_give_tiktokens_ids(encoder, encoding):
    assert_same(encoder, encoding, EDGE_CASES)
    assert_same(encoder, encoding, ["".join(EDGE_CASES)])


def test_random_strings_give_tiktokens_ids(encoder, encoding):
    strings = fuzz_strings(4000)
    assert_same(encoder, encoding, strings)
    assert_same(encoder, encoding, [" ".join(strings), "".join(strings)])


def test_a_small_cache_or_none_gives_the_same_ids(encoding):
    text = fixture_text()[:30_000] + "".join(fuzz_strings(300, seed=2))
    ref = encoding.encode_ordinary(text)
    for size in (0, 1, 16):
        enc = bpe.GPT2Encoder(encoding, cache_size=size)
        assert enc.encode(text).tolist() == ref and enc._core.cached_pieces <= size
        assert enc.encode(text).tolist() == ref


def test_unassigned_code_points_are_left_to_tiktoken(encoder, encoding):
    unknown = next(chr(c) for c in range(0x300, 0x110000) if unicodedata.category(chr(c)) == "Cn")
    for text in (f"a{unknown}b", f"x {unknown}", f"{unknown}", f"long text {'words ' * 100}{unknown}"):
        assert encoder._core.encode(text) is None
        assert_same(encoder, encoding, [text])


def test_surrogates_are_refused_as_by_str_encode(encoder):
    with pytest.raises(UnicodeEncodeError):
        "ab\ud800c".encode("utf-8")
    with pytest.raises(UnicodeEncodeError):
        encoder.encode("ab\ud800c")


def test_threads_share_one_encoder(encoder, encoding):
    texts = fuzz_strings(200, seed=3)
    expected = [encoding.encode_ordinary(t) for t in texts]
    wrong: list[str] = []

    def work(k):
        for _ in range(5):
            for t, e in zip(texts[k::2], expected[k::2]):
                if encoder.encode(t).tolist() != e:
                    wrong.append(t)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_every_code_point_has_tiktokens_class():
    """For each code point Python's tables know, the class the core gets is the one tiktoken's regex engine
    uses: a probe vocabulary holds "a"+c, "1"+c and "!"+c as tokens, so c's id shows which of them c joined
    (letter, number, other; none: White_Space)."""
    table = bpe.code_point_classes()
    cps = [c for c in range(0x110000) if table[c] != bpe.UNSURE and not 0xD800 <= c < 0xE000]
    prefixes = {"a": bpe.LETTER, "1": bpe.NUMBER, "!": bpe.OTHER}
    ranks = {bytes([b]): b for b in range(256)}
    probe = []
    for c in cps:
        for p, cls in prefixes.items():
            ranks[(p + chr(c)).encode()] = len(ranks)
            probe.append((c, cls))
    enc = tiktoken.Encoding("probe", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={})
    theirs = dict.fromkeys(cps, bpe.SPACE)
    for i in enc.encode_ordinary("".join(f"{p}{chr(c)}\n" for c in cps for p in prefixes)):
        if i >= 256:
            c, cls = probe[i - 256]
            theirs[c] = cls
    assert sum(v == bpe.SPACE for v in theirs.values()) == len(bpe.WHITE_SPACE)
    assert [(hex(c), table[c], theirs[c]) for c in cps if table[c] != theirs[c]] == []


def test_bad_vocabularies_are_refused():
    classes = bpe.code_point_classes()
    tokens = [bytes([b]) for b in range(256)]
    with pytest.raises(ValueError, match="byte 7 is not a token"):
        _core.BytePairEncoder(tokens[:7] + tokens[8:], classes)
    with pytest.raises(ValueError, match="token 256 repeats"):
        _core.BytePairEncoder(tokens + [b"a"], classes)
    with pytest.raises(ValueError, match="one entry per code point"):
        _core.BytePairEncoder(tokens, classes[:-1])
    with pytest.raises(ValueError, match="r50k"):
        bpe.GPT2Encoder(tiktoken.Encoding("other", pat_str=r"\S+|\s+",
                                          mergeable_ranks={bytes([b]): b for b in range(256)}, special_tokens={}))


def test_ranks_with_a_gap_are_refused_not_shifted():
    # p50k_base keeps <|endoftext|> among its ranks; rank order with the gap closed would shift every later id.
    from tiktoken_ext.openai_public import r50k_pat_str
    ranks = {**{bytes([b]): b for b in range(256)}, b"  ": 257, b"th": 258}
    gap = tiktoken.Encoding("gap", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 256})
    with pytest.raises(ValueError, match="no gap"):
        bpe.GPT2Encoder(gap)
    del ranks[b"  "], ranks[b"th"]
    dense = tiktoken.Encoding("dense", pat_str=r50k_pat_str, mergeable_ranks={**ranks, b"th": 256},
                              special_tokens={"<|endoftext|>": 257})
    assert bpe.GPT2Encoder(dense).encode("the th").tolist() == dense.encode_ordinary("the th")
