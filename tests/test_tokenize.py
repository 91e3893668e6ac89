"""`ncalm tokenize`: token files made once, read by every stage (ncalm.data.tokenize, ncalm.data.tokens)."""
from __future__ import annotations

import importlib.util
import json
import os
import pickle
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ncalm.data import tokenize as tk
from ncalm.data.corpus import documents
from ncalm.data.tokenize import TokenizeConfig, data_gym_encoding, data_gym_hf_json, safe_cuts, tokenize
from ncalm.data.config import TextConfig
from ncalm.data.tokens import language_source
from ncalm.lm.tokenizer import BPETokenizer, load_tokenizer

# The gpt2 tokenizer is tiktoken's (an optional extra, in the test extra): without it those tests skip.
needs_tiktoken = pytest.mark.skipif(importlib.util.find_spec("tiktoken") is None,
                                    reason="optional package tiktoken not installed")

GPT2_DIRS = [os.environ.get(tk.GPT2_FILES_ENV, ""), "/work/shared/data/gpt2"]
TRICKY = "Hello  world!\n\n  indented\nline\twith tab\n\nA 123 4567 it's you'll\n \nend \n"


def tiny_data_gym(root: Path, merges: list[tuple[str, str]]) -> Path:
    """vocab.bpe and encoder.json in GPT-2's data-gym format: 256 byte symbols, then ``merges``."""
    order = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    symbol = {b: chr(b) for b in order}
    for n, b in enumerate(b for b in range(256) if b not in symbol):
        order.append(b)
        symbol[b] = chr(256 + n)
    encoder = {symbol[b]: i for i, b in enumerate(order)}
    for a, b in merges:
        encoder[a + b] = len(encoder)
    encoder[tk.EOS_TEXT] = len(encoder)
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.bpe").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (root / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    return root


MERGES = [("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"), ("H", "e"), ("l", "l")]


@needs_tiktoken
def test_data_gym_files_load_into_tiktoken_and_hf_with_the_same_ids(tmp_path):
    root = tiny_data_gym(tmp_path / "bpe", MERGES)
    enc = data_gym_encoding(root, name="tiny")
    hf = BPETokenizer(__import__("tokenizers").Tokenizer.from_str(data_gym_hf_json(root)))
    ids = enc.encode_ordinary(TRICKY + " world Hello")
    assert ids == hf.encode(TRICKY + " world Hello")
    assert enc.n_vocab == hf.vocab_size == 256 + len(MERGES) + 1 and hf.eos_id == enc.eot_token
    assert len(enc.encode_ordinary(" world")) == 1  # the merges are used
    assert enc.decode(ids) == TRICKY + " world Hello"
    with pytest.raises(ValueError, match="not GPT-2's BPE files"):
        data_gym_encoding(root, hashes=tk.GPT2_HASHES)  # the real tokenizer checks the published hashes


@needs_tiktoken
@pytest.mark.parametrize("size", [1, 3, 8, 1000])
def test_safe_cuts_keep_the_ids(tmp_path, size):
    enc = data_gym_encoding(tiny_data_gym(tmp_path / "bpe", MERGES), name="tiny")
    text = TRICKY * 5
    pieces = safe_cuts(text, size)
    assert "".join(pieces) == text and (size > len(text) or len(pieces) > 1)
    assert sum((enc.encode_ordinary(p) for p in pieces), []) == enc.encode_ordinary(text)


def _corpus(root: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "héllo", "\n", "  ", "42", "<|endoftext|>"]
    root.mkdir()
    for i in range(n):
        (root / f"doc{i:02d}.txt").write_text(" ".join(rng.choice(words, 400 + 50 * i)), encoding="utf-8")
    return root


def _cfg(tmp_path, src, out="tok", **kw) -> TokenizeConfig:
    return TokenizeConfig(source=str(src), out=str(tmp_path / out), progress=False, **kw)


def test_byte_tokens_are_the_documents_and_parallel_equals_serial(tmp_path):
    src = _corpus(tmp_path / "c")
    serial = tokenize(_cfg(tmp_path, src, "a", tokenizer="byte", workers=1, chunk_bytes=1024), echo=lambda s: None)
    parallel = tokenize(_cfg(tmp_path, src, "b", tokenizer="byte", workers=2, chunk_bytes=1024), echo=lambda s: None)
    for split in ("train", "val"):
        a = np.fromfile(tmp_path / "a" / f"{split}.bin", np.uint16)
        assert np.array_equal(a, np.fromfile(tmp_path / "b" / f"{split}.bin", np.uint16))
        # Slow reference: the documents' bytes, each followed by EOS (256), in corpus order.
        docs = [t for s, t in tk.documents(_cfg(tmp_path, src)) if s == split]
        ref = np.concatenate([np.append(np.frombuffer(d.encode(), np.uint8).astype(np.uint16), 256) for d in docs])
        assert np.array_equal(a, ref)
        assert serial[split] == parallel[split]
        assert serial[split]["bytes"] == sum(len(d.encode()) for d in docs)
        assert serial[split]["documents"] == len(docs) == np.count_nonzero(a == 256)
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["vocab_size"] == 257 and meta["dtype"] == "uint16" and meta["tokenizer"] == "byte"
    assert not (tmp_path / "a" / "parts").exists() and load_tokenizer(tmp_path / "a").kind == "byte"


def _docs(path: Path) -> list[bytes]:
    """The documents of a byte tokenizer's token file (each ends with EOS, 256)."""
    ids = np.fromfile(path, np.uint16)
    return [d[:-1].astype(np.uint8).tobytes() for d in np.split(ids, np.flatnonzero(ids == 256) + 1)[:-1]]


@pytest.mark.parametrize("n_files", [1, 2, 80])  # 1 and 2: each file's tail is validation; 80: whole files
def test_max_bytes_caps_training_text_only_as_the_trainer_does(tmp_path, n_files):
    # It counted validation text too: one file's tail was never reached ("the split left no validation
    # text"), and of two files the training text overshot the cap while the second file's tail was lost.
    src = tmp_path / "c"
    src.mkdir()
    for i in range(n_files):
        (src / f"f{i:02d}.txt").write_text("".join(f"é {i} line {j}\n" for j in range(2000 // n_files)))
    total = sum(len(p.read_bytes()) for p in src.iterdir())
    cap = total // 3 + 1  # within a file and past a whole one (2 files), cut inside an "é" or not
    record = tokenize(_cfg(tmp_path, src, tokenizer="byte", workers=1, val_percent=10, max_bytes=cap),
                      echo=lambda s: None)
    train, val = documents(str(src), 10, cap, None)  # the trainer's split: all validation, training to the cap
    assert sorted(_docs(tmp_path / "tok" / "val.bin")) == sorted(v.encode() for v in val)
    got = _docs(tmp_path / "tok" / "train.bin")
    assert sum(map(len, got)) == record["train"]["bytes"] >= cap
    if n_files == 80:  # a split by file takes the file that reaches the cap whole, as the trainer's does
        assert sum(map(len, got[:-1])) < cap and set(got) <= {f.read_bytes() for f in src.iterdir()}
    else:
        assert record["train"]["bytes"] <= cap + 1  # + 1: the cut ends a character
    if n_files == 1:
        assert got == [train[0].encode()]


def test_second_run_tokenizes_nothing_and_a_changed_corpus_is_redone(tmp_path, monkeypatch):
    src = _corpus(tmp_path / "c")
    cfg = _cfg(tmp_path, src, tokenizer="byte", workers=1, chunk_bytes=1024)
    tokenize(cfg, echo=lambda s: None)
    calls = []
    monkeypatch.setattr(tk, "_encode_chunk", lambda job: calls.append(job))
    said = []
    tokenize(cfg, echo=said.append)
    assert calls == [] and "up to date" in said[0]
    (src / "doc00.txt").write_text("changed text", encoding="utf-8")
    with pytest.raises(FileNotFoundError):  # the (stubbed) encoder wrote no part: the run was redone
        tokenize(cfg, echo=lambda s: None)
    assert calls


def test_an_interrupted_run_keeps_its_finished_parts(tmp_path, monkeypatch):
    src = _corpus(tmp_path / "c")
    cfg = _cfg(tmp_path, src, tokenizer="byte", workers=1, chunk_bytes=1024)
    real, done = tk._encode_chunk, []

    def dies_after_three(job):
        if len(done) == 3:
            raise KeyboardInterrupt
        done.append(real(job))
    monkeypatch.setattr(tk, "_encode_chunk", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        tokenize(cfg, echo=lambda s: None)
    assert not (tmp_path / "tok" / "meta.json").exists() and len(list((tmp_path / "tok" / "parts").glob("*.bin"))) == 3
    redone = []
    monkeypatch.setattr(tk, "_encode_chunk", lambda job: redone.append(job) or real(job))
    said = []
    tokenize(cfg, echo=said.append)
    assert not {j[0] for j in redone} & set(done) and "3 part(s) kept" in said[0]
    tokenize(_cfg(tmp_path, src, "fresh", tokenizer="byte", workers=1), echo=lambda s: None)
    for split in ("train", "val"):
        assert (tmp_path / "tok" / f"{split}.bin").read_bytes() == (tmp_path / "fresh" / f"{split}.bin").read_bytes()


def test_max_val_bytes_caps_validation_and_both_caps_stop_the_reading(tmp_path):
    rows = [f"row {i} é " + "text " * (i % 9) for i in range(400)]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows) + "not json\n")  # read only past the caps
    val_rows = [r for i, r in enumerate(rows) if tk.is_validation(f"d.jsonl:{i + 1}", 10)]
    cfg = _cfg(tmp_path, src, tokenizer="byte", workers=1, val_percent=10, max_bytes=900, max_val_bytes=100)
    meta = tokenize(cfg, echo=lambda s: None)
    val = _docs(tmp_path / "tok" / "val.bin")
    assert val == [r.encode() for r in val_rows[:len(val)]] and sum(map(len, val[:-1])) < 100 <= sum(map(len, val))
    assert 900 <= meta["train"]["bytes"] <= 901 and meta["max_val_bytes"] == 100
    with pytest.raises(ValueError, match="not json|JSON"):  # no validation cap: read to the end for validation
        tokenize(cfg.replace(max_val_bytes=None, out=str(tmp_path / "all")), echo=lambda s: None)


def test_jsonl_documents_by_field_and_refused_as_raw_text(tmp_path):
    rows = [{"body": f"row {i} " + "text " * i, "id": i} for i in range(200)]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = tokenize(_cfg(tmp_path, src, tokenizer="byte", field="body", workers=1), echo=lambda s: None)
    assert meta["train"]["documents"] + meta["val"]["documents"] == 200 and meta["val"]["documents"] > 0
    train = np.fromfile(tmp_path / "tok" / "train.bin", np.uint16)
    assert b"{" not in train[train < 256].astype(np.uint8).tobytes()
    with pytest.raises(ValueError, match="'text' field"):
        tokenize(_cfg(tmp_path, src, "t2", tokenizer="byte", workers=1), echo=lambda s: None)
    with pytest.raises(ValueError, match="JSON lines, not text"):
        documents(str(src))


def test_bpe_and_hf_tokenizer_json(tmp_path):
    src = _corpus(tmp_path / "c")
    meta = tokenize(_cfg(tmp_path, src, "bpe", tokenizer="bpe", bpe_vocab=300, workers=2, chunk_bytes=2048),
                    echo=lambda s: None)
    tok = load_tokenizer(tmp_path / "bpe")
    assert meta["vocab_size"] == tok.vocab_size == 300 and meta["tokenizer"] == "bpe:300"
    docs = [t for s, t in tk.documents(_cfg(tmp_path, src)) if s == "val"]
    ref = sum((tok.encode(d) + [tok.eos_id] for d in docs), [])
    assert np.fromfile(tmp_path / "bpe" / "val.bin", np.uint16).tolist() == ref
    meta2 = tokenize(_cfg(tmp_path, src, "hf", tokenizer=f"hf:{tmp_path / 'bpe'}", workers=1), echo=lambda s: None)
    assert meta2["tokenizer"].startswith("hf:sha256:")
    assert (tmp_path / "hf" / "val.bin").read_bytes() == (tmp_path / "bpe" / "val.bin").read_bytes()


def test_gpt2_needs_its_files(tmp_path, monkeypatch):
    monkeypatch.delenv(tk.GPT2_FILES_ENV, raising=False)
    with pytest.raises(ValueError, match="gpt2_files: .*--gpt2-files"):
        tokenize(_cfg(tmp_path, _corpus(tmp_path / "c")), echo=lambda s: None)
    with pytest.raises(ValueError, match="lacks vocab.bpe, encoder.json"):
        tokenize(_cfg(tmp_path, tmp_path / "c", gpt2_files=str(tmp_path)), echo=lambda s: None)


@needs_tiktoken
@pytest.mark.skipif(not any(d and Path(d, "vocab.bpe").is_file() for d in GPT2_DIRS),
                    reason=f"GPT-2's BPE files not found (set {tk.GPT2_FILES_ENV})")
def test_gpt2_tokens_are_tiktokens(tmp_path):
    root = next(d for d in GPT2_DIRS if d and Path(d, "vocab.bpe").is_file())
    src = _corpus(tmp_path / "c")
    meta = tokenize(_cfg(tmp_path, src, gpt2_files=root, workers=2, chunk_bytes=1024), echo=lambda s: None)
    enc = data_gym_encoding(Path(root), hashes=tk.GPT2_HASHES)
    assert meta["vocab_size"] == 50257 and meta["eos_id"] == 50256
    for split in ("train", "val"):
        docs = [t for s, t in tk.documents(_cfg(tmp_path, src)) if s == split]
        ref = sum((enc.encode_ordinary(d) + [50256] for d in docs), [])
        assert np.fromfile(tmp_path / "tok" / f"{split}.bin", np.uint16).tolist() == ref
    tok = load_tokenizer(tmp_path / "tok")  # what training and evaluation read: the same ids
    assert tok.encode(TRICKY) == enc.encode_ordinary(TRICKY)


def test_training_reads_meta_json_dtype_and_nanogpt_meta_pkl(tmp_path):
    big = tmp_path / "u32"
    big.mkdir()
    np.array([70000, 1, 2] * 100, np.uint32).tofile(big / "train.bin")
    np.array([3, 70001] * 100, np.uint32).tofile(big / "val.bin")
    (big / "meta.json").write_text('{"vocab_size": 70002, "dtype": "uint32"}')
    source, _ = language_source(TextConfig(source=f"bin:{big}"), seq_len=8)
    assert source.vocab_size == 70002 and int(source.train.max()) == 70000
    nano = tmp_path / "nano"
    nano.mkdir()
    np.arange(300, dtype=np.uint16).__mod__(65).tofile(nano / "train.bin")
    np.arange(100, dtype=np.uint16).__mod__(65).tofile(nano / "val.bin")
    with pytest.raises(ValueError, match="vocabulary of its token files is unknown"):
        language_source(TextConfig(source=f"bin:{nano}"), seq_len=8)  # never a guess of 50304
    with open(nano / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": 65, "itos": {}, "stoi": {}}, f)
    assert language_source(TextConfig(source=f"bin:{nano}"), seq_len=8)[0].vocab_size == 65


def test_experiment_and_eval_bpb_on_a_token_folder(tmp_path, capsys):
    from ncalm.cli.main import main

    src = _corpus(tmp_path / "c", n=40)
    tok = tmp_path / "tok"
    assert main(["tokenize", "--text", str(src), "--tokenizer", "byte", "--out", str(tok), "--val-percent", "10",
                 "--no-progress"]) == 0
    meta = json.loads((tok / "meta.json").read_text())
    out = tmp_path / "exp"
    argv = ["experiment", "--preset", "tiny", "--seeds", "0", "--out", str(out), "--no-progress", "--arms", "scratch", "dyck",
            "--set", f"language.data=bin:{tok}", "--set", "language.run.tokens=4096", "--set", "bpb_bytes=1G",
            "--set", "prepretrain.run.tokens=2048", "--set", "language.data.seq_len=64",
            "--set", "prepretrain.data.seq_len=64", "--set", "language.run.eval_every=4",
            "--set", "language.run.eval_batches=2", "--set", "model.overrides.n_layer=1"]
    assert main(argv) == 0
    capsys.readouterr()
    runs = json.loads((out / "results.json").read_text())["runs"]
    for r in runs:
        bpb = r["bpb"]  # all of val.bin, bytes as tokenize stored them
        assert bpb["bytes"] == meta["val"]["bytes"] and bpb["tokens"] == meta["val"]["tokens"] - (
            np.fromfile(tok / "val.bin", np.uint16)[0] == 256)
        assert 0 < bpb["bits_per_byte"] < 10
    assert main(["tokenize", "--text", str(src), "--tokenizer", "byte", "--out", str(tok), "--val-percent", "10",
                 "--no-progress"]) == 0
    assert "up to date" in capsys.readouterr().out
    # `ncalm eval bpb` with its defaults reproduces the table's number, also where bpb_bytes cuts val.bin.
    ckpt = out / "seed0" / "scratch" / "language" / "checkpoint.pt"
    scratch = next(r for r in runs if r["arm"] == "scratch")["bpb"]
    assert main(["eval", "bpb", "--checkpoint", str(ckpt), "--no-progress", "--json", str(tmp_path / "b.json")]) == 0
    again = json.loads((tmp_path / "b.json").read_text())
    assert (again["bits_per_byte"], again["tokens"]) == (pytest.approx(scratch["bits_per_byte"]), scratch["tokens"])
    config = json.loads((out / "experiment.json").read_text())
    (out / "experiment.json").write_text(json.dumps({**config, "bpb_bytes": 5000}))
    assert main(["eval", "bpb", "--checkpoint", str(ckpt), "--no-progress", "--json", str(tmp_path / "b.json")]) == 0
    assert 5000 <= json.loads((tmp_path / "b.json").read_text())["bytes"] < 5010


_REAL_ENCODE_CHUNK = tk._encode_chunk


def _killed_at_the_third(job):
    """A worker killed as the OOM killer would: no exception, no result (module level: the pool pickles it)."""
    if job[0].endswith("_000002.bin"):
        os._exit(9)
    return _REAL_ENCODE_CHUNK(job)


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path, monkeypatch):
    if os.name != "posix":
        pytest.skip("the stubbed chunk reaches the workers by fork")
    src = _corpus(tmp_path / "c")
    cfg = _cfg(tmp_path, src, tokenizer="byte", workers=2, chunk_bytes=1024)
    real = tk._encode_chunk
    monkeypatch.setattr(tk, "_encode_chunk", _killed_at_the_third)
    with pytest.raises(OSError, match="a tokenizer worker process died .* run the same command again"):
        tokenize(cfg, echo=lambda s: None)
    assert not (tmp_path / "tok" / "meta.json").exists()
    monkeypatch.setattr(tk, "_encode_chunk", real)
    tokenize(cfg, echo=lambda s: None)  # continues, and the result is whole
    tokenize(_cfg(tmp_path, src, "fresh", tokenizer="byte", workers=1, chunk_bytes=1024), echo=lambda s: None)
    for split in ("train", "val"):
        assert np.array_equal(np.fromfile(tmp_path / "tok" / f"{split}.bin", np.uint16),
                              np.fromfile(tmp_path / "fresh" / f"{split}.bin", np.uint16))


def _stuck(job):
    """A chunk that takes a minute (module level: the pool pickles it)."""
    time.sleep(60)


def test_ctrl_c_with_workers_stops_them_instead_of_waiting(tmp_path, monkeypatch):
    # Interrupted while the pool ran (or started), tokenize once waited on its workers, or hung for good.
    if os.name != "posix":
        pytest.skip("the stubbed chunk reaches the workers by fork")
    src = _corpus(tmp_path / "c")
    monkeypatch.setattr(tk, "_encode_chunk", _stuck)
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        tokenize(_cfg(tmp_path, src, tokenizer="byte", workers=2, chunk_bytes=1024), echo=lambda s: None)
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "tok" / "meta.json").exists()


def test_a_rewrite_killed_midway_leaves_no_old_description_beside_new_tokens(tmp_path, monkeypatch):
    # The old meta.json and tokenizer.json (here byte's) once survived beside the new token files,
    # and bin:DIR trained on the new ids as the old tokenizer's.
    from ncalm.data.tokens import bin_meta

    src = _corpus(tmp_path / "c")
    tokenize(_cfg(tmp_path, src, tokenizer="byte", workers=1), echo=lambda s: None)
    real = tk.replacing

    def killed_after_train_bin(path, mode="w"):
        if Path(path).name == "val.bin":
            raise KeyboardInterrupt
        return real(path, mode)

    monkeypatch.setattr(tk, "replacing", killed_after_train_bin)
    with pytest.raises(KeyboardInterrupt):
        tokenize(_cfg(tmp_path, src, tokenizer="bpe", bpe_vocab=300, workers=1, force=True), echo=lambda s: None)
    out = tmp_path / "tok"
    assert not (out / "meta.json").exists() and not (out / "tokenizer.json").exists()
    # A meta.json that does not describe the files beside it is refused where token files are read.
    (out / "meta.json").write_text(json.dumps({"vocab_size": 257, "train": {"tokens": 3}}))
    with pytest.raises(ValueError, match="describes 3 train tokens but train.bin holds"):
        bin_meta(out)


def test_another_tokenization_in_out_is_replaced_only_with_force(tmp_path, capsys):
    # A byte folder once became bpe:300's without a word, and nanoGPT's train.bin was overwritten.
    from ncalm.cli.main import main

    src, out = _corpus(tmp_path / "c"), tmp_path / "tok"
    run = ["tokenize", "--text", str(src), "--out", str(out), "--no-progress", "--workers", "1", "--tokenizer"]
    assert main(run + ["byte"]) == 0
    before = (out / "train.bin").read_bytes()
    assert main(run + ["byte"]) == 0 and "up to date" in capsys.readouterr().out
    assert main(run + ["bpe", "--bpe-vocab", "300"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out} already holds another tokenization" in err
    assert 'tokenizer: "byte" -> "bpe:300"' in err and "pass --force" in err
    assert (out / "train.bin").read_bytes() == before
    assert json.loads((out / "meta.json").read_text())["tokenizer"] == "byte"
    (src / "doc00.txt").write_text("changed text", encoding="utf-8")  # the same tokenization, brought up to date
    assert main(run + ["byte"]) == 0 and "up to date" not in capsys.readouterr().out
    assert main(run + ["bpe", "--bpe-vocab", "300", "--force"]) == 0
    assert json.loads((out / "meta.json").read_text())["tokenizer"] == "bpe:300"
    nano = tmp_path / "nano"
    nano.mkdir()
    (nano / "train.bin").write_bytes(b"\0\0")
    assert main(run[:4] + [str(nano)] + run[5:] + ["byte"]) == 2
    assert "no meta.json of its own); pass --force" in capsys.readouterr().err
    assert (nano / "train.bin").read_bytes() == b"\0\0"


@pytest.mark.parametrize("pattern, out", [("", "c"), ("", "c/tok"), ("/**", "c/tok")])
def test_an_out_in_the_corpus_folder_never_reads_its_own_files(tmp_path, pattern, out):
    # Its parts/plan.json, then meta.json and tokenizer.json (a glob: the .bin files too) were read as text.
    src = _corpus(tmp_path / "c")
    tokenize(_cfg(tmp_path, src, "ref", tokenizer="byte", workers=1, chunk_bytes=1024), echo=lambda s: None)
    cfg = _cfg(tmp_path, f"{src}{pattern}", out, tokenizer="byte", workers=1, chunk_bytes=1024)
    for _ in range(2):
        said = []
        tokenize(cfg, echo=said.append)
        for split in ("train", "val"):
            assert (tmp_path / out / f"{split}.bin").read_bytes() == (tmp_path / "ref" / f"{split}.bin").read_bytes()
    assert "up to date" in said[0]


def test_a_file_that_is_not_utf8_is_named_as_such(tmp_path, capsys):
    # It was skipped without a word: alone, the error blamed the split ("change val_percent").
    from ncalm.cli.main import main

    src = tmp_path / "c"
    src.mkdir()
    (src / "bad.txt").write_bytes(b"\xff\xfe abc")
    assert main(["tokenize", "--text", str(src), "--tokenizer", "byte", "--out", str(tmp_path / "tok"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (f"ncalm tokenize: error: {src / 'bad.txt'}: not UTF-8 text (byte 0 is b'\\xff'); tokenize reads "
                   f"UTF-8 only: convert it (iconv -t UTF-8) or leave it out of --text\n")
    assert not (tmp_path / "tok" / "meta.json").exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names an open file by /proc/self/fd")
def test_parts_and_token_files_are_synced_before_they_are_renamed(tmp_path, monkeypatch):
    # Parts were renamed into place unsynced: after a crash a rerun kept a torn part and joined it in.
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst):
        events.append((os.path.realpath(src), str(dst)))
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    tokenize(_cfg(tmp_path, _corpus(tmp_path / "c"), tokenizer="byte", workers=1, chunk_bytes=1024),
             echo=lambda s: None)
    renames = [(i, e) for i, e in enumerate(events) if isinstance(e, tuple) and e[1].endswith((".bin", ".json"))]
    assert sum(f"/{tk.PARTS}/" in dst for _, (_, dst) in renames) > 4
    assert {Path(dst).name for _, (_, dst) in renames} >= {"train.bin", "val.bin", "meta.json", "tokenizer.json"}
    for i, (src, dst) in renames:
        assert src in events[:i], f"{dst} was renamed into place before its data was synced"


def test_a_corpus_folder_named_parts_in_out_is_read_and_never_deleted(tmp_path):
    # `--text book --out book` with chapters in book/parts/: every run deleted the folder (no plan.json of
    # ours there), and the chapters were left out of the corpus as if they were our part files.
    book = _corpus(tmp_path / "book", n=4)
    (book / "parts").mkdir()
    chapters = {f"ch{i}.txt": f"chapter {i}: " + "the cat sat on a mat. " * (40 + 9 * i) for i in range(8)}
    for name, text in chapters.items():
        (book / "parts" / name).write_text(text, encoding="utf-8")
    copy = tmp_path / "copy"  # the same corpus, away from any --out
    copy.mkdir()
    for p in book.rglob("*.txt"):
        (copy / p.relative_to(book)).parent.mkdir(exist_ok=True)
        (copy / p.relative_to(book)).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    tokenize(_cfg(tmp_path, copy, "ref", tokenizer="byte", workers=1, chunk_bytes=1024), echo=lambda s: None)
    # An earlier interrupted run's plan (of other settings), part and temporary: those, and only those, go.
    ours = ["plan.json", "train_000000.bin", ".val_000001.bin.tmp99"]
    (book / "parts" / "plan.json").write_text('{"fingerprint": "another"}', encoding="utf-8")
    for name in ours[1:]:
        (book / "parts" / name).write_bytes(b"\1\1")
    cfg = _cfg(tmp_path, book, "book", tokenizer="byte", workers=1, chunk_bytes=1024)
    for _ in range(2):
        said = []
        tokenize(cfg, echo=said.append)
        assert sorted(p.name for p in (book / "parts").iterdir()) == sorted(chapters)
        assert all((book / "parts" / n).read_text(encoding="utf-8") == t for n, t in chapters.items())
        for split in ("train", "val"):  # the chapters are in the corpus
            assert (book / f"{split}.bin").read_bytes() == (tmp_path / "ref" / f"{split}.bin").read_bytes()
    assert "up to date" in said[0]
    tk.clear_parts(book / "parts")  # nothing of ours left: the folder and its files stay
    assert sorted(p.name for p in (book / "parts").iterdir()) == sorted(chapters)


def test_another_tokenization_is_told_by_the_resolved_source_not_its_spelling(tmp_path, monkeypatch, capsys):
    # `--text corpus` then `--text ./corpus/` (a file edited) was refused as another tokenization, while
    # `--text corpus` from another folder (another corpus) replaced the first without a word.
    from ncalm.cli.main import main

    out = tmp_path / "tok"
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    _corpus(here / "corpus")
    _corpus(there / "corpus", n=14)
    run = ["tokenize", "--out", str(out), "--no-progress", "--workers", "1", "--tokenizer", "byte", "--text"]
    monkeypatch.chdir(here)
    assert main(run + ["corpus"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"] == "corpus" and meta["source_resolved"] == [str((here / "corpus").resolve())]
    (here / "corpus" / "doc00.txt").write_text("changed text", encoding="utf-8")
    capsys.readouterr()
    assert main(run + ["./corpus/"]) == 0 and "up to date" not in capsys.readouterr().out  # brought up to date
    before = (out / "train.bin").read_bytes()
    monkeypatch.chdir(there)
    assert main(run + ["corpus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out} already holds another tokenization (source_resolved: " in err
    assert str(there / "corpus") in err and "pass --force" in err
    assert (out / "train.bin").read_bytes() == before
    # A meta.json from before source_resolved: the spec as typed is compared, as it was.
    meta = json.loads((out / "meta.json").read_text())
    del meta["source_resolved"]
    (out / "meta.json").write_text(json.dumps(meta))
    assert main(run + ["corpus"]) == 2 and 'source: "./corpus/" -> "corpus"' in capsys.readouterr().err
    monkeypatch.chdir(here)
    (here / "corpus" / "doc01.txt").write_text("changed again", encoding="utf-8")
    assert main(run + ["./corpus/"]) == 0
    assert json.loads((out / "meta.json").read_text())["source_resolved"] == [str((here / "corpus").resolve())]


def test_a_tokenizer_json_without_our_meta_json_is_not_overwritten_without_force(tmp_path, capsys):
    # `--text proj --out proj` where proj has a tokenizer.json of its own: it was "nothing to lose"
    # (no meta.json, no .bin) and silently replaced by the new tokenization's.
    from ncalm.cli.main import main

    proj = _corpus(tmp_path / "proj")
    theirs = '{"model": "theirs"}'
    (proj / "tokenizer.json").write_text(theirs, encoding="utf-8")
    run = ["tokenize", "--text", str(proj), "--out", str(proj), "--no-progress", "--workers", "1",
           "--tokenizer", "byte"]
    assert main(run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {proj} already holds token files or a tokenizer.json" in err
    assert (proj / "tokenizer.json").read_text(encoding="utf-8") == theirs and not (proj / "meta.json").exists()
    assert main(run + ["--force"]) == 0 and load_tokenizer(proj).kind == "byte"


def test_a_changed_validation_cap_is_another_tokenization_too(tmp_path, capsys):
    # --max-bytes 5000 -> 6000 asked for --force, --max-val-bytes 300 -> 600 replaced the folder without a word.
    from ncalm.cli.main import main

    src, out = _corpus(tmp_path / "c"), tmp_path / "tok"
    run = ["tokenize", "--text", str(src), "--out", str(out), "--no-progress", "--workers", "1", "--tokenizer", "byte"]
    assert main(run + ["--max-val-bytes", "300"]) == 0
    assert main(run + ["--max-val-bytes", "600"]) == 2
    assert "(max_val_bytes: 300 -> 600); pass --force" in capsys.readouterr().err
    assert json.loads((out / "meta.json").read_text())["max_val_bytes"] == 300


def test_the_token_caches_key_of_a_capped_corpus_is_the_one_it_had(tmp_path):
    # tokenize's own split once counted validation text against max_bytes, and its capped folders were given a new
    # fingerprint; the token cache's corpus split never did, and its folders (a preset's 3 MB cap) must be kept.
    import hashlib

    from ncalm.data.tokenize import fingerprint, source_stamps

    src = _corpus(tmp_path / "c")
    cfg = _cfg(tmp_path, src, max_bytes=5000)
    extra = {"split": "corpus", "max_val_bytes": 1000, "format": 1}
    settings = {"field": cfg.field, "val_percent": cfg.val_percent, "max_bytes": 5000, "bpe_vocab": cfg.bpe_vocab}
    blob = json.dumps({"sources": source_stamps(cfg.source, cfg.out), "settings": settings | extra,
                       "tokenizer": "byte"}, sort_keys=True)
    assert fingerprint(cfg, "byte", extra) == hashlib.sha256(blob.encode()).hexdigest()
    assert fingerprint(cfg, "byte") != fingerprint(cfg.replace(max_bytes=None), "byte")


def test_a_failed_run_leaves_nothing_it_made_and_everything_that_was_there(tmp_path, monkeypatch, capsys):
    # A .jsonl without --field, or hf: without `datasets`, left OUT/ with .ncalm-lock and parts/plan.json
    # (and the hf: case drew a progress bar before its error).
    import sys

    from ncalm.cli import main

    (tmp_path / "d.jsonl").write_text('{"body": "hello"}\n{"body": "more text"}\n')
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    run = ["tokenize", "--tokenizer", "byte", "--workers", "1", "--out"]
    for out in ("new", "kept", "newa/newb/out"):  # the progress bar on: not drawn for a refusal at the first document
        assert main([*run, str(tmp_path / out), "--text", str(tmp_path / "d.jsonl")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ncalm tokenize: error: ") and "field 'text' is missing" in err, err
    assert not (tmp_path / "new").exists() and not (tmp_path / "newa").exists()  # newa/newb/ stayed
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]
    # Parts were written, but these settings split the corpus so again: nothing worth resuming.
    assert main([*run, str(tmp_path / "new"), "--text", str(tmp_path / "d.jsonl"), "--field", "body"]) == 2
    assert "the split left no validation text" in capsys.readouterr().err and not (tmp_path / "new").exists()
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    assert main([*run, str(tmp_path / "hf"), "--text", "hf:some/dataset"]) == 2  # with the progress bar on
    err = capsys.readouterr().err
    assert err.strip() == "ncalm tokenize: error: data 'hf:some/dataset' needs the `datasets` package: pip install " \
                          "'ncalm[hf]'"
    assert not (tmp_path / "hf").exists()


def test_a_failed_cleanup_never_replaces_the_error(tmp_path, monkeypatch):
    # Ctrl-C, then a pool worker wrote a temp file into parts/ after the cleanup listed it: its rmdir's
    # "Directory not empty" (exit 2) replaced the KeyboardInterrupt (exit 130).
    import errno

    def not_empty(parts):
        raise OSError(errno.ENOTEMPTY, "Directory not empty", str(parts))

    (tmp_path / "parts").mkdir()
    monkeypatch.setattr(tk, "clear_parts", not_empty)
    with pytest.raises(KeyboardInterrupt), tk._no_empty_plan_left(tmp_path / "parts"):
        raise KeyboardInterrupt
