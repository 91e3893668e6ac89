import importlib.util

import numpy as np
import pytest
import torch

from ncalm.data.corpus import documents
from ncalm.data.config import TextConfig
from ncalm.data.tokens import language_source
from ncalm.data import corpus
from ncalm.data.corpus import is_validation, stdlib_files, validation_documents
from ncalm.data.tokens import TokenSource, encode_documents
from ncalm.lm.tokenizer import BPETokenizer, ByteTokenizer, load_tokenizer


def test_stdlib_corpus_split_is_deterministic_and_disjoint():
    files = stdlib_files()
    assert len(files) > 500 and any(rel == "argparse.py" for rel, _ in files)
    assert not any("site-packages" in rel for rel, _ in files)
    train, val = documents("stdlib", max_bytes=300_000, max_val_bytes=100_000)
    train2, val2 = documents("stdlib", max_bytes=300_000, max_val_bytes=100_000)
    assert train == train2 and val == val2
    assert not set(train) & set(val)
    assert sum(map(len, train)) >= 300_000
    # The split belongs to the file, not to the cap: a larger cap only adds files.
    big_train, big_val = documents("stdlib", max_bytes=600_000, max_val_bytes=100_000)
    assert set(train) <= set(big_train) and big_val == val
    n_val = sum(is_validation(rel, 2.0) for rel, _ in files)
    assert 0.005 * len(files) < n_val < 0.05 * len(files)


def test_single_local_file_splits_its_tail(tmp_path):
    text = "".join(f"line {i}\n" for i in range(1000))
    (tmp_path / "a.txt").write_text(text)
    train, val = documents(str(tmp_path / "a.txt"), val_percent=10)
    assert train[0] + val[0] == text and len(val[0]) == pytest.approx(len(text) / 10, rel=0.01)


def test_directory_and_glob_and_missing_paths(tmp_path, monkeypatch):
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text(f"file {i} " * 20)
    (tmp_path / "skip.bin").write_bytes(b"\0\1")
    train, val = documents(str(tmp_path), val_percent=20)
    assert len(train) + len(val) == 30 and val
    # However the files are named, each lands on the same side (keys are relative to the spec's root).
    for spec in (str(tmp_path / "f*.txt"), "f*.txt", "./f*.txt", f"{tmp_path}/./*.txt"):
        monkeypatch.chdir(tmp_path)
        assert documents(spec, val_percent=20) == (train, val), spec
    with pytest.raises(FileNotFoundError, match="nope"):
        documents(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        documents(str(tmp_path / "*.md"))


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets is installed")
def test_hf_without_datasets_is_a_clear_error():
    with pytest.raises(ValueError, match="datasets"):
        documents("hf:roneneldan/TinyStories")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="the optional `datasets` is not installed")
def test_hf_dataset_from_a_local_folder(tmp_path, monkeypatch):
    # A local folder of jsonl is a dataset `datasets` loads offline: no network here.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rows = [f"document {i}: " + "the quick brown fox " * (i % 7 + 1) for i in range(300)]
    (tmp_path / "train.jsonl").write_text("".join(f'{{"text": "{r}"}}\n' for r in rows))
    train, val = documents(f"hf:{tmp_path}", val_percent=5.0, max_bytes=None, max_val_bytes=None)
    assert sorted(train + val) == sorted(rows) and 0 < len(val) < 60
    assert val == [r for i, r in enumerate(rows) if is_validation(str(i), 5.0)]
    capped, _ = documents(f"hf:{tmp_path}", val_percent=5.0, max_bytes=200, max_val_bytes=100)
    assert 200 <= sum(map(len, capped)) < 200 + max(map(len, rows))
    monkeypatch.setattr(corpus, "HF_MAX_DOCUMENTS", 50)
    with pytest.warns(UserWarning, match="first 50 documents"):
        head_train, head_val = documents(f"hf:{tmp_path}", val_percent=5.0, max_bytes=None, max_val_bytes=None)
    assert len(head_train) + len(head_val) == 50
    (tmp_path / "train.jsonl").write_text('{"text": "one document only"}\n')
    with pytest.raises(ValueError, match="corpus split left 1 train and 0 validation documents"):
        documents(f"hf:{tmp_path}", max_bytes=None, max_val_bytes=None)
    (tmp_path / "train.jsonl").write_text('{"body": "no text column"}\n')
    with pytest.raises(ValueError, match="no 'text' column"):
        documents(f"hf:{tmp_path}", max_bytes=None, max_val_bytes=None)


def test_validation_documents_are_the_trainers_with_few_files(tmp_path):
    # Under MIN_FILES_FOR_FILE_SPLIT files the tail of every file is validation,
    # whatever max_bytes caps on the training side.
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text("".join(f"file {i} line {j}\n" for j in range(100)))
    _, val = documents(str(tmp_path), val_percent=10)
    assert len(val) == 5
    assert validation_documents(str(tmp_path), 10, max_val_bytes=None) == val
    capped_train, capped_val = documents(str(tmp_path), val_percent=10, max_bytes=1)
    assert len(capped_train) == 1 and capped_val == val
    assert len(documents(str(tmp_path), val_percent=10, max_val_bytes=1)[1]) == 1  # the validation cap holds too


def test_byte_tokenizer_round_trips_unicode(tmp_path):
    tok = ByteTokenizer()
    text = "def f(x): return 'héllo ✓'\n"
    assert tok.decode(tok.encode(text)) == text and max(tok.encode(text)) < 256
    assert tok.eos_id == 256 and tok.vocab_size == 257
    tok.save(tmp_path)
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)


def test_bpe_tokenizer_trains_locally_and_reloads(tmp_path):
    train, _ = documents("stdlib", max_bytes=200_000)
    tok = BPETokenizer.train(train, vocab_size=600)
    text = "import os\n\ndef main():\n    return os.path.join('a', 'b')\n"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < len(text.encode()) / 1.5
    assert tok.vocab_size <= 600 and 0 <= tok.eos_id < tok.vocab_size
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.encode(text) == ids
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train(train, vocab_size=100)


def test_language_source_windows_cover_each_epoch_once():
    tokens = np.arange(1001, dtype=np.uint16)
    source = TokenSource(tokens, np.arange(300, dtype=np.uint16), vocab_size=1001, seq_len=10, seed=5)
    assert source.n_windows == 100
    x, y = source.items(np.arange(100))
    assert sorted(x[:, 0].tolist()) == list(range(0, 1000, 10))
    assert torch.equal(y, x + 1)
    x2, _ = source.items(np.arange(100, 200))
    assert sorted(x2[:, 0].tolist()) == list(range(0, 1000, 10)) and not torch.equal(x, x2)
    val = source.val_batches(4, 100)  # 29 windows of 11 tokens in 300: 7 batches of 4 and one of 1
    assert [len(x) for x, _ in val] == [4] * 7 + [1] and val[0][0][0, 0] == 0 and val[-1][0][0, 0] == 280


def test_nanogpt_bin_layout(tmp_path):
    rng = np.random.default_rng(0)
    rng.integers(0, 500, 5000).astype(np.uint16).tofile(tmp_path / "train.bin")
    rng.integers(0, 500, 1000).astype(np.uint16).tofile(tmp_path / "val.bin")
    (tmp_path / "meta.json").write_text('{"vocab_size": 500}')
    source, tok = language_source(TextConfig(source=f"bin:{tmp_path}"), seq_len=32)
    assert tok is None and source.vocab_size == 500
    x, y = source.items([0, 1])
    train = np.fromfile(tmp_path / "train.bin", dtype=np.uint16)
    assert any(np.array_equal(train[i:i + 32], x[0].numpy()) for i in range(0, len(train) - 32, 32))
    with pytest.raises(FileNotFoundError, match="val.bin"):
        (tmp_path / "val.bin").unlink()
        language_source(TextConfig(source=str(tmp_path / "train.bin")), seq_len=32)


def test_bin_data_outside_the_vocabulary_is_refused_before_training(tmp_path):
    # Checked once over the whole files, not per sampled batch (which could be hours in).
    train = np.zeros(5000, dtype=np.uint16)
    train[4321] = 450
    train.tofile(tmp_path / "train.bin")
    val = np.zeros(1000, dtype=np.uint16)
    val[999] = 400
    val.tofile(tmp_path / "val.bin")
    (tmp_path / "meta.json").write_text('{"vocab_size": 400}')
    with pytest.raises(ValueError, match=r"train\.bin holds token id 450, outside the vocabulary of 400"):
        language_source(TextConfig(source=f"bin:{tmp_path}"), seq_len=32)
    train[4321] = 0
    train.tofile(tmp_path / "train.bin")
    with pytest.raises(ValueError, match=r"val\.bin holds token id 400, outside the vocabulary of 400"):
        language_source(TextConfig(source=f"bin:{tmp_path}"), seq_len=32)
    source, _ = language_source(TextConfig(source=f"bin:{tmp_path}", vocab_size=401), seq_len=32)
    assert source.vocab_size == 401


def test_bin_layout_problems_name_the_file(tmp_path, monkeypatch):
    np.zeros(5000, dtype=np.uint16).tofile(tmp_path / "train.bin")
    (tmp_path / "val.bin").write_bytes(b"")
    (tmp_path / "meta.json").write_text('{"vocab_size": 400}')
    with pytest.raises(ValueError, match=r"val\.bin is empty"):
        language_source(TextConfig(source=f"bin:{tmp_path}"), seq_len=32)
    np.zeros(1000, dtype=np.uint16).tofile(tmp_path / "val.bin")
    (tmp_path / "meta.json").write_text('{"block_size": 1024}')
    with pytest.raises(ValueError, match=r"meta\.json has no integer 'vocab_size'"):
        language_source(TextConfig(source=f"bin:{tmp_path}"), seq_len=32)
    (tmp_path / "meta.json").write_text('{"vocab_size": 400}')
    monkeypatch.setenv("HOME", str(tmp_path.parent))
    source, _ = language_source(TextConfig(source=f"bin:~/{tmp_path.name}"), seq_len=32)
    assert source.vocab_size == 400


def test_bpe_keeps_a_literal_end_of_text_string_as_text():
    docs = ["def f(x):\n    return x + 1\n" * 20, "the quick brown fox <|endoftext|> jumps\n" * 5]
    tok = BPETokenizer.train(docs, vocab_size=300)
    for text in ("a <|endoftext|> b", "<|endoftext|>", "x<|endoftext|><|endoftext|>y"):
        ids = tok.encode(text)
        assert tok.eos_id not in ids and tok.decode(ids) == text, text
    eos_ids = encode_documents(["a <|endoftext|> b"], tok)
    assert eos_ids.tolist().count(tok.eos_id) == 1 and eos_ids[-1] == tok.eos_id  # only the one appended


def test_stdlib_language_source_with_byte_tokenizer():
    source, tok = language_source(TextConfig(source="stdlib", max_bytes=100_000, max_val_bytes=50_000), seq_len=64)
    assert isinstance(tok, ByteTokenizer) and source.vocab_size == 257
    x, y = source.items([0, 1, 2])
    assert x.shape == (3, 64) and torch.equal(x[:, 1:], y[:, :-1])
    assert source.describe()["data"] == "stdlib"
