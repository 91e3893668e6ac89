"""The deflate-length model (ncacore/deflate_size) against Python's gzip.

The filter scores candidates with a model of zlib's level-9 parse and trees
instead of compressing; it must give len(gzip.compress(b, 9)) exactly.
"""
import gzip

import numpy as np
import pytest

import ncalm
from ncalm import _core


def _inputs(rng: np.random.Generator, count: int):
    """Byte strings of the shapes deflate treats differently: noise (stored
    blocks), small alphabets (short matches), repeats (long matches, the
    258 cap, lazy matching), int32 tokens like the score's, tiny sizes, and
    long chains under zlib's reduced chain budget."""
    for i in range(count):
        n = int(rng.integers(0, 16001)) if i % 5 == 0 else int(rng.integers(0, 3000))
        kind = i % 7
        if kind == 0:
            yield rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        elif kind == 1:
            yield rng.integers(0, int(rng.integers(1, 12)), n, dtype=np.uint8).tobytes()
        elif kind == 2:
            yield rng.integers(0, int(rng.integers(1, 10001)), n // 4).astype("<i4").tobytes()
        elif kind == 3:
            unit = rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes()
            yield (unit * (n // len(unit) + 1))[:n]
        elif kind == 4:
            yield bytes(n)
        elif kind == 5:
            yield rng.integers(0, 256, int(rng.integers(0, 8)), dtype=np.uint8).tobytes()
        else:
            # Mutated 33-80 byte words over 2-3 letters: hash chains past 1024
            # entries and matches of 32 or more, where zlib cuts its chain budget.
            alpha = int(rng.integers(2, 4))
            words = [rng.integers(0, alpha, int(rng.integers(33, 81)), dtype=np.uint8) for _ in range(4)]
            out = bytearray()
            while len(out) < 4000 + n:
                w = words[int(rng.integers(0, 4))].copy()
                w[int(rng.integers(0, len(w)))] ^= 1
                out += w.tobytes()
            yield bytes(out[: min(16000, 4000 + n)])


def test_model_equals_python_gzip_on_random_inputs():
    rng = np.random.default_rng(7)
    for data in _inputs(rng, 600):
        assert _core.gzip_size(data, "model") == len(gzip.compress(data, 9)), len(data)


def test_model_equals_python_gzip_on_nca_score_inputs():
    # Score-shaped inputs (10 frames of patch tokens as int32) from many rules,
    # half of them low-complexity, and a 4-colour config with more repeats.
    for cfg in (ncalm.NCAConfig(), ncalm.NCAConfig(colors=4, grid=16)):
        rules, _ = ncalm.find_rules(cfg, 3, np.arange(40))
        grids = ncalm.rollout(cfg, 3, rules, np.arange(40), frames=10)
        for tokens in ncalm.encode(cfg, grids):
            raw = tokens.astype("<i4").tobytes()
            assert _core.gzip_size(raw, "model") == len(gzip.compress(raw, 9))


def test_auto_uses_the_model_only_where_it_matches_zlib():
    assert _core.gzip_model_matches_zlib()  # the zlib this package links is stock zlib
    big = np.random.default_rng(1).integers(0, 50, 40000, dtype=np.uint8).tobytes()
    assert _core.gzip_size(big) == _core.gzip_size(big, "zlib") == len(gzip.compress(big, 9))


def test_batch_sizes_match_one_at_a_time():
    rows = np.random.default_rng(3).integers(0, 7, (20, 500), dtype=np.uint8)
    want = [len(gzip.compress(r.tobytes(), 9)) for r in rows]
    for method in ("auto", "zlib", "model"):
        assert _core.gzip_sizes(rows, method).tolist() == want
    with pytest.raises(ValueError, match="2-d uint8 array"):
        _core.gzip_sizes(rows[0], "model")


def test_bad_method_and_oversized_model_input_are_refused():
    with pytest.raises(ValueError, match="at most 16000 bytes, got 16001"):
        _core.gzip_size(bytes(16001), "model")
    with pytest.raises(ValueError, match="method must be 'auto', 'zlib' or 'model'"):
        _core.gzip_size(b"abc", "fast")
    with pytest.raises(ValueError, match="at most 16000 bytes"):
        _core.gzip_sizes(np.zeros((2, 16001), np.uint8), "model")
