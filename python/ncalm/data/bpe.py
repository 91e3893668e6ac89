"""GPT-2's byte-level BPE from the compiled core, with tiktoken's ids.

Why ours: tiktoken encodes at 5-16 MiB/s on one thread here (depending on the text and the
load), and two processes on a shared 2-core machine could not tokenize a corpus at 1.6x that
(benchmarks/bench_tokenize.py).
ncalm._core.BytePairEncoder is the same algorithm (tiktoken's r50k pre-tokenizer and merge
rule) with a cache of each distinct piece's ids, so a word is merged once per corpus.
tests/test_bpe.py holds it to tiktoken's ``encode_ordinary`` ids on fixed, hand-written
and random text and on every code point.

The pre-tokenizer's character classes (letter, number, White_Space, other) come from
Python's unicodedata. tiktoken's regex engine may know a newer Unicode: a code point
unassigned in Python's table may be a letter there, so the core declines text holding one
and tiktoken encodes it instead; the ids are tiktoken's either way.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np

from ncalm import _core

# Unicode's White_Space property (PropList.txt), what \s matches in tiktoken's regex engine;
# str.isspace differs (it adds U+001C..U+001F).
WHITE_SPACE = frozenset([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                         0x202F, 0x205F, 0x3000])
OTHER, LETTER, NUMBER, SPACE, UNSURE = range(5)  # ncacore/bpe.hpp's CharClass


@lru_cache(maxsize=1)
def code_point_classes() -> bytes:
    """One class per code point (0..U+10FFFF) for the core's pre-tokenizer."""
    categories = "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs Zl Zp Cc Cf Cs Co Cn"
    cls = {c: LETTER if c[0] == "L" else NUMBER if c[0] == "N" else UNSURE if c == "Cn" else OTHER
           for c in categories.split()}
    table = bytearray(map(cls.__getitem__, map(unicodedata.category, map(chr, range(0x110000)))))
    for cp in WHITE_SPACE:
        table[cp] = SPACE
    return bytes(table)


class GPT2Encoder:
    """Text -> the ids of a tiktoken Encoding with the r50k pattern (GPT-2's), ``encode_ordinary``'s."""

    def __init__(self, encoding, cache_size: int = 1 << 18):
        from tiktoken_ext.openai_public import r50k_pat_str
        if encoding._pat_str != r50k_pat_str:
            raise ValueError(f"{encoding.name}: the compiled encoder has GPT-2's (r50k) pattern only")
        self.encoding = encoding
        ranks = encoding._mergeable_ranks  # the core takes the tokens in rank order, 0, 1, ... with no gap
        if set(ranks.values()) != set(range(len(ranks))):
            raise ValueError(f"{encoding.name}: the compiled encoder needs ranks 0..n-1 with no gap "
                             "(a special token among them, as in p50k_base, is not supported)")
        tokens = sorted(ranks, key=ranks.__getitem__)
        self._core = _core.BytePairEncoder(tokens, code_point_classes(), cache_size)

    def encode(self, text: str) -> np.ndarray:
        """The ids (uint32) of ``text``, special-token text encoded as ordinary text."""
        ids = self._core.encode(text)
        if ids is None:  # a code point Python's Unicode tables do not know: tiktoken's own classes decide
            ids = self.encoding.encode_to_numpy(text, allowed_special=set(), disallowed_special=())
        return ids
