"""A text corpus is tokenized once into the token cache (ncalm.data.cache), then memory-mapped.

The reference is the in-memory path it replaced: corpus.documents, ByteTokenizer or BPETokenizer.train
(BPE trained on the training documents), encode_documents.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from ncalm.data import cache, tokenize as tk
from ncalm.data.config import DataConfig, TextConfig
from ncalm.data.corpus import documents, validation_documents
from ncalm.data.tokens import FILES, encode_documents, files_digest, language_source
from ncalm.eval.bpb import evaluate_lm, evaluate_text
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.tokenizer import BPETokenizer, ByteTokenizer
from ncalm.train.sources import build_source


def _corpus(root, n_files: int):
    """Files with non-ASCII text, a literal end-of-text string, an empty and a non-UTF-8 file, and one
    long file that the writer cuts into several chunks."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        (root / f"f{i:02d}.txt").write_text(f"file {i}: héllo wörld ✓ <|endoftext|> x = {i} * 2\n" * (3 + i % 7))
    (root / "long.py").write_text("".join(f"def f{i}(x):\n    return x + {i}  # ünïcode\n\n" for i in range(400)))
    (root / "empty.txt").write_text("")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    return root


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(cache, "CHUNK_BYTES", 1024)  # long documents cut, several chunks, a pool of workers


@pytest.mark.filterwarnings("ignore:skipped 1 file")
@pytest.mark.parametrize("kind", ["byte", "bpe"])
@pytest.mark.parametrize("n_files", [40, 2])  # held-out files; too few files: each file's tail
def test_cached_tokens_are_the_in_memory_encoding(tmp_path, small_chunks, kind, n_files):
    src = _corpus(tmp_path / "c", n_files)
    caps = dict(val_percent=10, max_bytes=12_000, max_val_bytes=3_000)
    source, tok = language_source(TextConfig(source=str(src), tokenizer=kind, bpe_vocab=300, **caps), seq_len=16)
    train, val = documents(str(src), **caps)
    ref_tok = ByteTokenizer() if kind == "byte" else BPETokenizer.train(train, 300)
    assert tok.to_dict() == ref_tok.to_dict()
    assert np.array_equal(source.train, encode_documents(train, ref_tok))
    assert np.array_equal(source.val, encode_documents(val, ref_tok))
    assert isinstance(source.train, np.memmap)
    # The run's data identity is what the in-memory path gave: resumes of runs before the cache still match
    # (they may differ in the files' stamps, which evaluation compares and a resume does not).
    assert source.describe() == {"kind": "text", "seq_len": 16, "seed": 0, "train_tokens": len(source.train),
                                 "val_tokens": len(source.val), "data": str(src), "tokenizer": kind,
                                 "train_documents": len(train), "val_documents": len(val), "val_percent": 10,
                                 "max_bytes": 12_000, FILES: files_digest(str(src))}


def _text(src, **kw) -> DataConfig:
    return DataConfig(kind="text", seq_len=16, text=TextConfig(source=str(src), val_percent=10, **kw))


def _refuse(*args, **kwargs):
    raise AssertionError("tokenized or read the corpus again")


@pytest.mark.filterwarnings("ignore:skipped 1 file")
def test_a_second_start_tokenizes_nothing_and_a_change_tokenizes_anew(tmp_path, monkeypatch):
    src = _corpus(tmp_path / "c", 20)
    data = _text(src, tokenizer="bpe", bpe_vocab=300, cache=str(tmp_path / "cache"))
    first, tok = build_source(data, progress=False)
    (folder,) = (tmp_path / "cache").iterdir()
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    with monkeypatch.context() as m:  # no reading, no BPE training, no encoding, no writing
        for where, name in ((cache, "documents"), (cache, "tokenize"), (tk.Encoder, "encode"),
                            (BPETokenizer, "train")):
            m.setattr(where, name, _refuse)
        again, tok2 = build_source(data, progress=False)
        resumed, tok3 = build_source(data, tokenizer=tok, progress=False)  # a resume passes its tokenizer
    assert np.array_equal(again.train, first.train) and tok2.to_dict() == tok.to_dict() == tok3.to_dict()
    assert np.array_equal(resumed.val, first.val)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert len(list((tmp_path / "cache").iterdir())) == 1
    # A changed setting or source file is another folder, tokenized anew.
    build_source(_text(src, tokenizer="bpe", bpe_vocab=320, cache=str(tmp_path / "cache")), progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    (src / "f03.txt").write_text("changed\n")
    changed, _ = build_source(data, progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 3
    train, val = documents(str(src), val_percent=10)
    assert np.array_equal(changed.train, encode_documents(train, BPETokenizer.train(train, 300)))


def test_the_cache_folder_follows_the_setting_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NCALM_CACHE", str(tmp_path / "env"))
    assert cache.cache_root() == tmp_path / "env" / "tokens"
    assert cache.cache_root(str(tmp_path / "set")) == tmp_path / "set"
    monkeypatch.delenv("NCALM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "ncalm" / "tokens"


@pytest.mark.filterwarnings("ignore:skipped 1 file")
def test_an_interrupted_tokenization_is_never_read(tmp_path, monkeypatch, small_chunks):
    src = _corpus(tmp_path / "c", 20)
    data = _text(src, cache=str(tmp_path / "cache"))
    calls = []

    def dies(self, pieces, dtype):  # killed after a first chunk (in each worker process)
        if calls:
            raise OSError(28, "No space left on device")
        calls.append(1)
        return encode(self, pieces, dtype)

    encode = tk.Encoder.encode
    with monkeypatch.context() as m, pytest.raises(OSError, match="No space"):
        m.setattr(tk.Encoder, "encode", dies)
        build_source(data, progress=False)
    (folder,) = (tmp_path / "cache").iterdir()
    assert not (folder / "meta.json").exists()  # written last: this folder is unfinished
    source, tok = build_source(data, progress=False)
    train, val = documents(str(src), val_percent=10)
    assert np.array_equal(source.train, encode_documents(train, tok))
    assert np.array_equal(source.val, encode_documents(val, tok))


@pytest.mark.filterwarnings("ignore:skipped 1 file")
def test_a_given_tokenizer_is_kept(tmp_path):
    """A resumed run (or one keeping an init checkpoint's embeddings) encodes with its own tokenizer,
    whatever BPE this corpus would train."""
    src = _corpus(tmp_path / "c", 20)
    other = BPETokenizer.train(["zzz yyy xxx " * 50, "another corpus entirely"], 280)
    data = _text(src, tokenizer="bpe", bpe_vocab=300, cache=str(tmp_path / "cache"))
    source, tok = build_source(data, tokenizer=other, progress=False)
    assert tok.to_dict() == other.to_dict()
    train, val = documents(str(src), val_percent=10)
    assert np.array_equal(source.train, encode_documents(train, other))
    assert source.vocab_size == other.vocab_size


@pytest.mark.filterwarnings("ignore:skipped 1 file")
@pytest.mark.parametrize("kind", ["byte", "bpe"])
def test_bits_per_byte_from_the_cache_is_the_in_memory_evaluation(tmp_path, monkeypatch, kind):
    src = _corpus(tmp_path / "c", 40)
    text = TextConfig(source=str(src), tokenizer=kind, bpe_vocab=300, val_percent=20, max_val_bytes=2_000,
                      cache=str(tmp_path / "cache"))
    _, tok = build_source(DataConfig(kind="text", seq_len=16, text=text), progress=False)
    torch.manual_seed(0)
    model = LlamaLM(model_config("tiny", vocab_size=tok.vocab_size, max_seq_len=32))
    for cap in (1, 700, 1_900, None):  # whole documents up to the cap (a document cut by it stays whole)
        want = evaluate_lm(model, tok, validation_documents(str(src), 20, cap), seq_len=32)
        with monkeypatch.context() as m:
            usable = cap is not None and cap <= 2_000
            if usable:  # from val.bin: no text read
                m.setattr("ncalm.data.corpus.validation_documents", _refuse)
            got = evaluate_text(model, tok, text, seq_len=32, max_bytes=cap)
        assert (got.tokens, got.bytes, got.documents) == (want.tokens, want.bytes, want.documents), cap
        assert got.nats == pytest.approx(want.nats, rel=1e-6)
        assert all(type(v) in (int, float) for v in got.to_dict().values()), cap  # result.json takes them


@pytest.mark.filterwarnings("ignore:skipped 1 file")
def test_a_resume_tokenizes_nothing_and_may_use_another_cache_folder(tmp_path, monkeypatch):
    from ncalm.train import StageConfig, train

    src = _corpus(tmp_path / "c", 20)

    def stage(where: str, **run) -> StageConfig:
        text = {"source": str(src), "tokenizer": "bpe", "bpe_vocab": 300, "val_percent": 10, "cache": where}
        return StageConfig.from_dict({
            "data": {"kind": "text", "seq_len": 16, "text": text}, "optim": {"batch_size": 2},
            "run": {"out_dir": str(tmp_path / "run"), "steps": 3, "eval_every": 0, "ckpt_every": 1,
                    "log_every": 1, "progress": False, "threads": 1, **run}})

    train(stage(str(tmp_path / "a"), stop_at=1))
    with monkeypatch.context() as m:
        for where, name in ((cache, "documents"), (cache, "tokenize"), (BPETokenizer, "train")):
            m.setattr(where, name, _refuse)
        assert train(stage(str(tmp_path / "a"), resume=True, stop_at=2))["step"] == 2
    # Where the cache lives is no part of the run: elsewhere it is made again, with the run's own tokenizer.
    assert train(stage(str(tmp_path / "b"), resume=True))["finished"]
    assert len(list((tmp_path / "b").iterdir())) == 1


@pytest.mark.filterwarnings("ignore:skipped 1 file")
def test_text_with_a_tokenizer_json_or_gpt2(tmp_path, monkeypatch, small_chunks):
    import os
    from pathlib import Path

    from ncalm.settings import SettingError

    gpt2_dirs = (os.environ.get(tk.GPT2_FILES_ENV, ""), "/work/shared/data/gpt2")  # as test_tokenize
    src = _corpus(tmp_path / "c", 20)
    train, val = documents(str(src), val_percent=10)
    saved = BPETokenizer.train(["some other corpus, some other merges " * 40], 290)
    saved.save(tmp_path / "tok")
    source, tok = language_source(TextConfig(source=str(src), tokenizer=f"hf:{tmp_path / 'tok'}", val_percent=10), seq_len=16)
    assert tok.to_dict() == saved.to_dict() and np.array_equal(source.val, encode_documents(val, saved))
    assert np.array_equal(source.train, encode_documents(train, saved))

    monkeypatch.delenv(tk.GPT2_FILES_ENV, raising=False)
    with pytest.raises(SettingError, match=r"^tokenizer: gpt2 needs .*NCALM_GPT2_FILES"):  # keyed within text
        language_source(TextConfig(source=str(src), tokenizer="gpt2", val_percent=10), seq_len=16)
    gpt2 = next((Path(d) for d in gpt2_dirs if d and (Path(d) / "vocab.bpe").is_file()), None)
    if gpt2 is None or importlib.util.find_spec("tiktoken") is None:
        pytest.skip("GPT-2's BPE files or tiktoken not here")
    monkeypatch.setenv(tk.GPT2_FILES_ENV, str(gpt2))
    source, tok = language_source(TextConfig(source=str(src), tokenizer="gpt2", val_percent=10), seq_len=16)
    enc = tk.data_gym_encoding(gpt2)
    want = [i for doc in train for i in enc.encode_ordinary(doc) + [enc.eot_token]]
    assert tok.vocab_size == tk.GPT2_VOCAB == 50257 and source.train.tolist() == want


def test_an_unwritable_cache_is_a_one_line_error_naming_the_setting(tmp_path):
    from ncalm.settings import SettingError

    src = _corpus(tmp_path / "c", 2)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SettingError, match=r"text.cache: cannot write the token cache .*file/sub"):
        build_source(_text(src, cache=str(tmp_path / "file" / "sub")), progress=False)


def test_a_tokenizer_refused_as_the_data_is_read_is_named_by_its_full_key(tmp_path, monkeypatch, capsys):
    # Once "text.tokenizer: ..." from the cache, "tokenizer: ..." from an hf:PATH, and tokenize's own
    # "gpt2_files: ..." for the folder $NCALM_GPT2_FILES names: none a key of the stage.
    from ncalm.cli import main

    src = _corpus(tmp_path / "c", 4)
    (tmp_path / "empty").mkdir()
    monkeypatch.delenv(tk.GPT2_FILES_ENV, raising=False)
    for env, tokenizer, said in ((None, "gpt2", "gpt2 needs GPT-2's vocab.bpe and encoder.json"),
                                 (str(tmp_path / "empty"), "gpt2", f"gpt2: ${tk.GPT2_FILES_ENV}: {tmp_path / 'empty'} "
                                                                   "lacks vocab.bpe"),
                                 (None, f"hf:{tmp_path / 'none'}", f"hf:{tmp_path / 'none'}: no tokenizer.json")):
        if env:
            monkeypatch.setenv(tk.GPT2_FILES_ENV, env)
        for argv in (["pretrain", "--tokenizer", tokenizer], ["prepretrain", "--data", "text",
                                                              "--set", f"data.text.tokenizer={tokenizer!r}"]):
            assert main([*argv, "--text", str(src), "--out", str(tmp_path / "r"), "--steps", "1", "--warmup", "0",
                         "--no-progress"]) == 2
            err = capsys.readouterr().err
            assert err == f"ncalm {argv[0]}: error: data.text.tokenizer: {said}" + err.partition(said)[2], err
            assert err.count("\n") == 1


@pytest.mark.filterwarnings("ignore:skipped 1 file")
def test_keep_embeddings_with_a_tokenizer_json_must_name_the_same_one(tmp_path):
    from ncalm.train import StageConfig, train

    src = _corpus(tmp_path / "c", 20)
    for name, words in (("tok", "one corpus"), ("other", "another corpus")):
        BPETokenizer.train([f"{words} of merges " * 40], 290).save(tmp_path / name)

    def stage(out: str, tok: str, **model) -> StageConfig:
        text = {"source": str(src), "tokenizer": f"hf:{tmp_path / tok}", "val_percent": 10}
        return StageConfig.from_dict({
            "model": model, "data": {"kind": "text", "seq_len": 16, "text": text}, "optim": {"batch_size": 2},
            "run": {"out_dir": str(tmp_path / out), "steps": 1, "eval_every": 0, "progress": False, "threads": 1}})

    first = train(stage("a", "tok"))["checkpoint"]
    keep = {"init": first, "transfer": {"keep_embeddings": True}}
    assert train(stage("b", "tok", **keep))["finished"]
    with pytest.raises(ValueError, match=r"keep-embeddings reuses the tokenizer .* asks for data.text.tokenizer hf:"):
        train(stage("c", "other", **keep))


@pytest.mark.filterwarnings("ignore:skipped 1 file")
def test_a_resume_needs_no_tokenizer_file_of_hf_path(tmp_path):
    import shutil

    src = _corpus(tmp_path / "c", 20)
    BPETokenizer.train(["a tokenizer file " * 40], 290).save(tmp_path / "tok")
    data = _text(src, tokenizer=f"hf:{tmp_path / 'tok'}", cache=str(tmp_path / "cache"))
    first, tok = build_source(data, progress=False)
    shutil.rmtree(tmp_path / "tok")  # the resumed run's checkpoint holds the tokenizer
    again, _ = build_source(data, tokenizer=tok, progress=False)
    assert np.array_equal(again.train, first.train)


@pytest.mark.parametrize("kind", ["added-token", "wordpiece"])
def test_bits_per_byte_with_a_tokenizer_whose_bytes_per_token_are_unknown_counts_them_from_the_text(tmp_path, kind):
    # An added (non-special) token would count 0 bytes, and a WordPiece vocabulary has no byte table:
    # the cache cannot cut at a byte cap exactly, so evaluate_text reads the text as evaluate_lm does.
    tokenizers = pytest.importorskip("tokenizers")
    src = tmp_path / "c"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02d}.txt").write_text(f"file {i}: hello ZZZZ world and more x = {i}\n" * (3 + i % 7))
    if kind == "added-token":
        tok = tokenizers.Tokenizer.from_str(BPETokenizer.train(["hello world file x = 1 2 3 " * 50], 300).to_hf_json())
        tok.add_tokens(["ZZZZ"])
    else:
        from tokenizers import models, pre_tokenizers, trainers
        tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator([p.read_text() for p in src.iterdir()],
                                trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]", "<|endoftext|>"]))
    tok.save(str(tmp_path / "tok.json"))
    text = TextConfig(source=str(src), tokenizer=f"hf:{tmp_path / 'tok.json'}", val_percent=20, max_val_bytes=None,
                      cache=str(tmp_path / "cache"))
    _, t = build_source(DataConfig(kind="text", seq_len=16, text=text), progress=False)
    model = LlamaLM(model_config("tiny", vocab_size=t.vocab_size, max_seq_len=32))
    for cap in (700, None):
        want = evaluate_lm(model, t, validation_documents(str(src), 20, cap), seq_len=32)
        got = evaluate_text(model, t, text, seq_len=32, max_bytes=cap)
        assert (got.bytes, got.tokens, got.documents) == (want.bytes, want.tokens, want.documents)
        assert got.nats == pytest.approx(want.nats, rel=1e-6)
