"""tokenizer.json files are Hugging Face's format: the `tokenizers` library reads ncalm's with the
same ids, ncalm reads HF's, and ncalm's older {"type": ...} files still load."""
import json
import random

import pytest

from ncalm.data.corpus import documents
from ncalm.lm.tokenizer import EOS_TEXT, BPETokenizer, ByteTokenizer, load_tokenizer

tokenizers = pytest.importorskip("tokenizers")

TEXTS = ["def f(x): return 'héllo ✓'\n", "  \t\n\x00\x01 spaces   x\r\n", "emoji 🎉 and 中文 ünïcödé", ""]


def test_the_byte_tokenizer_file_is_an_hf_tokenizer_with_the_same_ids(tmp_path):
    tok = ByteTokenizer()
    path = tok.save(tmp_path)
    hf = tokenizers.Tokenizer.from_file(str(path))
    assert hf.get_vocab_size() == tok.vocab_size and hf.token_to_id(EOS_TEXT) == tok.eos_id
    for text in TEXTS:
        assert hf.encode(text).ids == tok.encode(text)
        assert hf.decode(tok.encode(text)) == text
    rng = random.Random(0)  # arbitrary ids: broken UTF-8 is replaced alike, EOS dropped alike
    for _ in range(500):
        ids = [rng.randrange(tok.vocab_size) for _ in range(rng.randrange(1, 10))]
        assert hf.decode(ids) == tok.decode(ids), ids
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)


def test_a_tokenizer_file_written_by_hf_loads(tmp_path):
    train, _ = documents("stdlib", max_bytes=100_000)
    backend = BPETokenizer.train(train, vocab_size=400)._tok
    backend.save(str(tmp_path / "tokenizer.json"))  # the library's own writer, not ncalm's
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, BPETokenizer) and tok.encode(TEXTS[0]) == backend.encode(TEXTS[0]).ids
    # ncalm ends documents with <|endoftext|>: a tokenizer without one is refused by name.
    no_eos = tokenizers.Tokenizer(tokenizers.models.BPE())
    no_eos.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match=r"tokenizer\.json: tokenizer has no <\|endoftext\|> token"):
        load_tokenizer(tmp_path)


def test_old_ncalm_tokenizer_files_still_load(tmp_path):
    bpe = BPETokenizer.train(documents("stdlib", max_bytes=100_000)[0], vocab_size=400)
    for old, want in (({"type": "byte"}, ByteTokenizer()), ({"type": "bpe", "json": bpe.to_hf_json()}, bpe)):
        (tmp_path / "tokenizer.json").write_text(json.dumps(old))
        tok = load_tokenizer(tmp_path)
        assert type(tok) is type(want) and tok.encode(TEXTS[0]) == want.encode(TEXTS[0])
    (tmp_path / "tokenizer.json").write_text(json.dumps({"vocab": {}}))
    with pytest.raises(ValueError, match="neither a Hugging Face tokenizer.json"):
        load_tokenizer(tmp_path)


def test_gpt2s_tokenizer_is_named_gpt2_however_its_file_lays_out_merges(tmp_path):
    # GPT2_DIGEST is what recognises GPT-2 in a checkpoint (--keep-embeddings advice, export-hf): it must be
    # GPT-2's, and not depend on how a version of `tokenizers` writes merges ("a b" or ["a", "b"]).
    import os
    from pathlib import Path

    from ncalm.data import tokenize as tk
    from ncalm.lm.tokenizer import GPT2_DIGEST, bpe_digest, tokenizer_from_dict

    trained = BPETokenizer.train(["some text to merge, some text to merge"] * 20, 280)
    assert trained.name == "bpe" and ByteTokenizer().name == "byte"
    d = json.loads(trained.to_hf_json())
    d["model"]["merges"] = [m.split(" ") if isinstance(m, str) else " ".join(m) for m in d["model"]["merges"]]
    assert bpe_digest(json.dumps(d)) == bpe_digest(trained.to_hf_json())
    d["model"]["merges"] = d["model"]["merges"][:-1]
    assert bpe_digest(json.dumps(d)) != bpe_digest(trained.to_hf_json())
    root = next((Path(p) for p in (os.environ.get(tk.GPT2_FILES_ENV, ""), "/work/shared/data/gpt2")
                 if p and (Path(p) / "vocab.bpe").is_file()), None)
    if root is None:
        pytest.skip(f"GPT-2's BPE files not found (set {tk.GPT2_FILES_ENV})")
    gpt2 = tokenizer_from_dict({"type": "bpe", "json": tk.data_gym_hf_json(root)})
    assert bpe_digest(gpt2.to_hf_json()) == GPT2_DIGEST and gpt2.name == "gpt2" and gpt2.kind == "bpe"
