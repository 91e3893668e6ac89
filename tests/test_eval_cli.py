import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ncalm import NCAConfig
from ncalm.lm.checkpoint import load_model, save_checkpoint
from ncalm.cli import main
from ncalm.data.corpus import documents
from ncalm.eval.bpb import evaluate_lm
from ncalm.eval.icl import evaluate_icl, greedy_predictor
from ncalm.lm.model import LlamaLM, ModelConfig
from ncalm.lm.tokenizer import ByteTokenizer


def _checkpoint(path, vocab, data: dict, tokenizer=None):
    torch.manual_seed(0)
    model = LlamaLM(ModelConfig(vocab_size=vocab, n_layer=1, n_head=2, d_model=16, max_seq_len=200))
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.cfg.to_dict(),
                           "tokenizer": tokenizer.to_dict() if tokenizer else None,
                           "train_config": {"data": data}})
    return path


def test_eval_bpb_on_the_checkpoints_validation_split(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(25):
        (corpus / f"f{i}.txt").write_text(f"document {i} " * (20 + i))
    data = {"kind": "text", "text": str(corpus), "val_percent": 30.0, "max_val_bytes": 100_000}
    ck = _checkpoint(tmp_path / "lang.pt", 257, data, ByteTokenizer())
    assert main(["eval", "bpb", "--checkpoint", str(ck), "--seq-len", "64", "--json", str(tmp_path / "r.json")]) == 0
    got = json.loads((tmp_path / "r.json").read_text())
    _, val = documents(str(corpus), 30.0)
    model, tok, _ = load_model(ck)
    want = evaluate_lm(model, tok, val, seq_len=64)
    assert got["bits_per_byte"] == pytest.approx(want.bits_per_byte) and got["bytes"] == want.bytes
    assert "bits/byte" in capsys.readouterr().out
    assert got["same_data_as_training"] is None  # a checkpoint that recorded no data identity: nothing to compare


def test_eval_icl_reports_model_and_baseline_per_band(tmp_path):
    nca = {"grid": 4, "colors": 3, "patch": 2, "band": [0.3, 1.0]}
    cfg = NCAConfig(**nca, seq_len=100)
    ck = _checkpoint(tmp_path / "nca.pt", cfg.vocab_size, {"kind": "nca", "seq_len": 100, "nca": nca})
    out = tmp_path / "icl.json"
    assert main(["eval", "icl", "--checkpoint", str(ck), "--rules", "6", "--k", "1", "3",
                 "--bands", "0.0,0.2", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert set(got["model"]) == {"train 0.3-1", "0-0.2"}
    model, _, _ = load_model(ck)
    want = evaluate_icl(greedy_predictor(model), cfg, 0, 6, [1, 3], {"x": (0.3, 1.0)})["x"]
    assert got["model"]["train 0.3-1"] == want
    for rows in got["copy-last-frame"].values():
        assert [r["k"] for r in rows] == [1, 3] and all(0 <= r["cell_acc"] <= 1 for r in rows)


def test_eval_errors_are_one_line(tmp_path, capsys):
    ck = _checkpoint(tmp_path / "nca.pt", 18, {"kind": "nca", "seq_len": 100, "nca": {"grid": 4, "colors": 2}})
    assert main(["eval", "bpb", "--checkpoint", str(ck)]) == 2
    assert "needs a language-stage checkpoint" in capsys.readouterr().err
    assert main(["eval", "icl", "--checkpoint", str(ck), "--k", "40"]) == 2
    assert "k: must lie in [1, 32]" in capsys.readouterr().err  # (200 + 2) // 6 - 1
    assert main(["eval", "icl", "--checkpoint", str(ck), "--k", "1", "--bands", "1.9,2.0"]) == 2
    assert "bands: 1.9-2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a malformed band is refused while parsing, before any work
        main(["eval", "icl", "--checkpoint", str(ck), "--bands", "0.1"])
    assert exit_.value.code == 2 and "argument --bands: band must be LOWER,UPPER" in capsys.readouterr().err


def _text_checkpoint(tmp_path, max_val_bytes=100_000):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(25):  # non-ASCII, so characters and UTF-8 bytes differ
        (corpus / f"f{i}.txt").write_text(f"d\u00e9j\u00e0 vu {i} " * (20 + i))
    data = {"kind": "text", "text": str(corpus), "val_percent": 30.0, "max_val_bytes": max_val_bytes}
    return corpus, _checkpoint(tmp_path / "lang.pt", 257, data, ByteTokenizer())


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def test_eval_bpb_max_bytes_caps_as_the_trainer_does(tmp_path):
    corpus, _ = _text_checkpoint(tmp_path)
    cap = _utf8(documents(str(corpus), 30.0, max_val_bytes=1)[1][0]) + 1  # two documents reach it
    data = {"kind": "text", "text": str(corpus), "val_percent": 30.0, "max_val_bytes": cap}
    ck = _checkpoint(tmp_path / "capped.pt", 257, data, ByteTokenizer())
    trainer_val = documents(str(corpus), 30.0, max_val_bytes=cap)[1]
    assert len(trainer_val) == 2  # so a cap counted differently would change the set
    # Default: the checkpoint's cap, which must select exactly the trainer's validation documents.
    for extra in ([], ["--max-bytes", str(cap)]):
        assert main(["eval", "bpb", "--checkpoint", str(ck), "--seq-len", "64", *extra,
                     "--json", str(tmp_path / "r.json")]) == 0
        got = json.loads((tmp_path / "r.json").read_text())
        assert got["documents"] == len(trainer_val)
        assert got["bytes"] == sum(len(d.encode("utf-8")) for d in trainer_val)
    # Size suffixes as the other commands take them; documents are added until the cap is reached.
    assert main(["eval", "bpb", "--checkpoint", str(ck), "--seq-len", "64", "--max-bytes", "1k",
                 "--json", str(tmp_path / "k.json")]) == 0
    got = json.loads((tmp_path / "k.json").read_text())
    val = documents(str(corpus), 30.0, max_val_bytes=1000)[1]
    assert got["documents"] == len(val) and sum(map(_utf8, val[:-1])) < 1000 <= sum(map(_utf8, val))


@pytest.mark.parametrize("argv, message", [
    (["--seq-len", "0"], "seq_len: must be >= 1, got 0"),
    (["--seq-len", "201"], "seq_len: must be in [1, 200] (the model's max_seq_len), got 201"),
    (["--val-percent", "0"], "val_percent: must be in (0, 100), got 0.0"),
    (["--batch-size", "0"], "batch_size: must be >= 1, got 0"),
])
def test_eval_bpb_bad_options_are_one_line_errors(tmp_path, capsys, argv, message):
    _, ck = _text_checkpoint(tmp_path)
    assert main(["eval", "bpb", "--checkpoint", str(ck), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("value", ["0", "-5", "0.4"])
def test_eval_bpb_refuses_a_max_bytes_below_one(tmp_path, capsys, value):
    _, ck = _text_checkpoint(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "bpb", "--checkpoint", str(ck), "--max-bytes", value])
    assert exit_.value.code == 2 and "argument --max-bytes" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--rules", "0"], "rules: must be in [1, 2**32], got 0"),
    (["--seed", "-1"], "seed: must be in [0, 2**64), got -1"),
    (["--batch-size", "0"], "batch_size: must be >= 1, got 0"),
])
def test_eval_icl_errors_name_the_option(tmp_path, capsys, argv, message):
    nca = {"grid": 4, "colors": 3, "patch": 2, "band": [0.3, 1.0]}
    ck = _checkpoint(tmp_path / "nca.pt", NCAConfig(**nca).vocab_size, {"kind": "nca", "seq_len": 100, "nca": nca})
    assert main(["eval", "icl", "--checkpoint", str(ck), "--k", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"ncalm eval: error: {message}\n"


def test_eval_icl_refuses_rules_that_cannot_fit_before_making_any(tmp_path, capsys):
    # 2**32 rules of 2 frames are ~300 GiB: refused in one line naming --rules, not a MemoryError traceback
    # (nor blamed on the training band, whose generator call used to be the first to notice).
    assert main(["eval", "icl", "--checkpoint", str(_nca_checkpoint(tmp_path)), "--rules", str(2**32),
                 "--k", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ncalm eval: error: rules: {2**32:,} test rules of 2 frames (k up to 1): needs ")
    assert "GiB of memory, more than the" in err and err.count("\n") == 1


def _shards(root, docs, tokenizer=None):
    """nanoGPT-layout shards of ``docs`` (a few for training, the rest validation), as ncalm writes them."""
    from ncalm.data.tokens import encode_documents

    root.mkdir()
    tok = ByteTokenizer()
    encode_documents(docs[:2], tok).astype(np.uint16).tofile(root / "train.bin")
    encode_documents(docs[2:], tok).astype(np.uint16).tofile(root / "val.bin")
    if tokenizer is not None:
        tokenizer.save(root)
    return root


SHARD_DOCS = [f"d\u00e9j\u00e0 vu {i} " * (5 + i) for i in range(8)]


@pytest.mark.parametrize("spelling", ["bin:{}", "{}", "{}/val.bin"])
def test_eval_bpb_on_token_shards_evaluates_val_bin(tmp_path, spelling):
    # Read as a text corpus, a shard directory used to be its tokenizer.json (or "does not exist").
    shards = _shards(tmp_path / "shards", SHARD_DOCS, ByteTokenizer())
    data = {"kind": "text", "text": f"bin:{shards}", "max_val_bytes": None}
    ck = _checkpoint(tmp_path / "lang.pt", 257, data, ByteTokenizer())
    out = tmp_path / "r.json"
    assert main(["eval", "bpb", "--checkpoint", str(ck), "--data", spelling.format(shards), "--seq-len", "16",
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    model, tok, _ = load_model(ck)
    want = evaluate_lm(model, tok, SHARD_DOCS[2:], seq_len=16)  # the same stream: EOS d3 EOS d4 EOS ...
    assert got["bits_per_byte"] == pytest.approx(want.bits_per_byte)
    assert (got["bytes"], got["documents"], got["tokens"]) == (want.bytes, want.documents, want.tokens)


def test_eval_bpb_refuses_shards_whose_ids_it_cannot_count(tmp_path, capsys):
    ck = _checkpoint(tmp_path / "lang.pt", 300, {"kind": "text", "text": "stdlib"}, ByteTokenizer())
    bare = _shards(tmp_path / "bare", SHARD_DOCS)
    assert main(["eval", "bpb", "--checkpoint", str(ck), "--data", f"bin:{bare}"]) == 2
    assert "no tokenizer.json beside val.bin" in capsys.readouterr().err
    # A checkpoint trained on such shards has no tokenizer at all: not an NCA checkpoint, though.
    ck = _checkpoint(tmp_path / "bin.pt", 300, {"kind": "text", "text": f"bin:{bare}"})
    assert main(["eval", "bpb", "--checkpoint", str(ck)]) == 2
    err = capsys.readouterr().err
    assert "without a tokenizer: bits per byte needs one" in err and "NCA" not in err


def test_eval_bpb_refuses_shards_of_another_tokenizer(tmp_path, capsys):
    pytest.importorskip("tokenizers")
    from ncalm.lm.tokenizer import BPETokenizer

    shards = _shards(tmp_path / "shards", SHARD_DOCS, BPETokenizer.train(SHARD_DOCS, 300))
    ck = _checkpoint(tmp_path / "lang.pt", 300, {"kind": "text", "text": "stdlib"}, ByteTokenizer())
    assert main(["eval", "bpb", "--checkpoint", str(ck), "--data", str(shards)]) == 2
    assert "not the checkpoint's tokenizer" in capsys.readouterr().err


def test_eval_bpb_keeps_the_checkpoints_cap_for_its_own_corpus(tmp_path, monkeypatch):
    corpus, ck = _text_checkpoint(tmp_path, max_val_bytes=300)
    trainer_val = documents(str(corpus), 30.0, max_val_bytes=300)[1]
    monkeypatch.chdir(tmp_path)
    for spelling in (str(corpus), "corpus", "./corpus/"):  # the same corpus, spelled otherwise
        assert main(["eval", "bpb", "--checkpoint", str(ck), "--data", spelling, "--seq-len", "64",
                     "--json", "r.json"]) == 0
        got = json.loads((tmp_path / "r.json").read_text())
        assert (got["max_bytes"], got["documents"]) == (300, len(trainer_val)), spelling
    # Another corpus: the default cap.
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("other text " * 50)
    assert main(["eval", "bpb", "--checkpoint", str(ck), "--data", str(other), "--json", "r.json"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["max_bytes"] == 1_000_000


def test_eval_bpb_honours_a_stored_no_cap(tmp_path, monkeypatch):
    import ncalm.cli.evaluate as evaluate

    monkeypatch.setattr(evaluate, "DEFAULT_MAX_VAL_BYTES", 300)  # so that a wrong cap would show
    corpus, ck = _text_checkpoint(tmp_path, max_val_bytes=None)
    every = documents(str(corpus), 30.0, max_val_bytes=None)[1]
    assert len(documents(str(corpus), 30.0, max_val_bytes=300)[1]) < len(every)
    for data in ([], ["--data", str(corpus)]):
        assert main(["eval", "bpb", "--checkpoint", str(ck), *data, "--seq-len", "64",
                     "--json", str(tmp_path / "r.json")]) == 0
        got = json.loads((tmp_path / "r.json").read_text())
        assert got["max_bytes"] is None and got["documents"] == len(every)


def _nca_checkpoint(tmp_path):
    nca = {"grid": 4, "colors": 3, "patch": 2, "band": [0.3, 1.0]}
    return _checkpoint(tmp_path / "nca.pt", NCAConfig(**nca).vocab_size, {"kind": "nca", "seq_len": 100, "nca": nca})


def test_eval_shows_progress_on_stderr_unless_no_progress(tmp_path, capsys):
    _, lang = _text_checkpoint(tmp_path)
    icl = ["eval", "icl", "--checkpoint", str(_nca_checkpoint(tmp_path)), "--rules", "3", "--k", "1", "2",
           "--bands", "0.0,0.2"]
    for argv, bar in ((["eval", "bpb", "--checkpoint", str(lang), "--seq-len", "64"], "bpb"), (icl, "icl 0-0.2")):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert bar in err and bar not in out  # the bar stays off stdout, which holds the result
        assert main([*argv, "--no-progress"]) == 0
        assert capsys.readouterr().err == ""


def test_eval_device_defaults_to_auto_and_auto_runs(tmp_path):
    from ncalm.eval.config import BpbConfig, IclConfig

    for cls in (BpbConfig, IclConfig):  # as training does: cuda when available, else cpu
        assert cls(checkpoint="x").device == "auto"
    # torch knows no device "auto": these runs only work if it is resolved before use.
    _, lang = _text_checkpoint(tmp_path)
    assert main(["eval", "bpb", "--checkpoint", str(lang), "--seq-len", "64", "--no-progress"]) == 0
    assert main(["eval", "icl", "--checkpoint", str(_nca_checkpoint(tmp_path)), "--rules", "3", "--k", "1",
                 "--bands", "--no-progress"]) == 0


def test_eval_takes_config_and_set_as_every_command(tmp_path, capsys):
    # The layers as elsewhere: the TOML file, then each --set, then the flags, key by key.
    out = tmp_path / "icl.json"
    toml = tmp_path / "icl.toml"
    toml.write_text(f'checkpoint = "{_nca_checkpoint(tmp_path)}"\nrules = 5\nk = [1, 2]\nbands = []\n'
                    "progress = false\n")
    assert main(["eval", "icl", "--config", str(toml), "--set", "rules=3", "--set", f"json={out}", "--k", "1"]) == 0
    got = json.loads(out.read_text())
    assert (got["rules"], got["ks"], list(got["model"])) == (3, [1], ["train 0.3-1"])
    assert capsys.readouterr().err == ""  # progress = false, from the file
    for name, loss in (("base", 3.0), ("run", 2.0)):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"step": t, "val_loss": 4.0 - t / 100 * (4.0 - loss)}) + "\n" for t in (0, 50, 100)))
    (tmp_path / "speedup.toml").write_text(f'baseline = "{tmp_path / "base.jsonl"}"\nrun = "{tmp_path / "run.jsonl"}"\n')
    assert main(["eval", "speedup", "--config", str(tmp_path / "speedup.toml"), "--set", "x=step"]) == 0
    assert "speedup 2.00x (50 vs 100 step)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["icl", "--checkpoint", "x.pt", "--set", "rules=0"], "rules: must be in [1, 2**32], got 0"),
    (["icl", "--checkpoint", "x.pt", "--set", "k=[1, 2.5]"], "k: must be a list of integers"),
    (["bpb", "--checkpoint", "x.pt", "--set", "max_bytes=0"], "max_bytes: must be >= 1, got 0"),
    (["bpb", "--checkpoint", "x.pt", "--set", "device=gpu"], "device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    (["bpb", "--checkpoint", "x.pt", "--set", "rules=3"], "rules: unknown setting; known: batch_size, checkpoint, data"),
    (["bpb", "--set", "seq_len=64"], "checkpoint: required"),
    (["speedup", "--set", "run=a.jsonl"], "baseline: required"),
])
def test_eval_settings_errors_are_one_line_naming_the_key(capsys, argv, message):
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ncalm eval: error: {message}") and err.count("\n") == 1


def test_icl_bands_read_alike_from_flags_set_and_toml():
    from ncalm.cli import build_parser
    from ncalm.eval.config import IclConfig
    from ncalm.settings import flag_values, resolve

    base = {"checkpoint": "x.pt"}
    args = build_parser("eval").parse_args(["eval", "icl", "--bands", "none", "0.1,0.2"])
    want = [None, (0.1, 0.2)]  # none: an unfiltered band
    assert resolve(IclConfig, base, flags=flag_values(args)).bands == want
    assert resolve(IclConfig, base, assignments=['bands=["none", [0.1, 0.2]]']).bands == want
    assert resolve(IclConfig, base, assignments=["bands=0.1,0.2"]).bands == [(0.1, 0.2)]
    assert IclConfig(checkpoint="x.pt").bands == [(0.0, 0.3), (0.3, 0.5)]


# --- the data a checkpoint was trained on, changed since ------------------------------------------

TINY_RUN = ["--seq-len", "16", "--batch-size", "4", "--set", "run.tokens=256", "--set", "run.eval_every=0",
            "--set", "run.progress=false", "--set", "data.val_sequences=1"]


def _text(i: int) -> str:
    return "".join(f"line {j} of version {i}: d\u00e9j\u00e0 vu\n" for j in range(60 + 20 * i))


def _bpb(capsys, *argv) -> tuple[int, dict | None, str]:
    """(exit code, the JSON result or None, stderr) of `ncalm eval bpb` on run/checkpoint.pt."""
    rc = main(["eval", "bpb", "--checkpoint", "run/checkpoint.pt", "--no-progress", "--json", "r.json", *argv])
    got = json.loads(Path("r.json").read_text()) if rc == 0 else None
    Path("r.json").unlink(missing_ok=True)
    return rc, got, capsys.readouterr().err


@pytest.mark.parametrize("change", ["edit", "replace", "move"])
def test_eval_bpb_refuses_a_corpus_changed_since_training(tmp_path, monkeypatch, capsys, change):
    monkeypatch.chdir(tmp_path)
    open("corpus.txt", "w").write(_text(0))
    assert main(["pretrain", "--text", "corpus.txt", "--out", "run", *TINY_RUN]) == 0
    rc, same, _ = _bpb(capsys)
    assert rc == 0 and same["same_data_as_training"] is True and same["data_path"] == str(tmp_path / "corpus.txt")
    if change == "edit":  # more text, same file
        open("corpus.txt", "a").write(_text(1))
    elif change == "replace":  # another corpus renamed over it
        open("new.txt", "w").write(_text(1))
        (tmp_path / "new.txt").replace("corpus.txt")
    else:  # the same relative name, from another working directory, naming another file (of another size)
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "corpus.txt").write_text(_text(1))
        (tmp_path / "run").rename(tmp_path / "elsewhere" / "run")
        monkeypatch.chdir(tmp_path / "elsewhere")
    rc, _, err = _bpb(capsys)
    real = tmp_path / ("elsewhere" if change == "move" else "") / "corpus.txt"
    assert rc == 2 and err.count("\n") == 1, err
    assert f"data: corpus.txt ({real}) changed since training" in err and "pass --data corpus.txt" in err
    # Named explicitly, it is the user's choice: evaluated as it is now, and the result says which data.
    rc, got, err = _bpb(capsys, "--data", "corpus.txt")
    assert rc == 0 and "changed since run/checkpoint.pt was trained on it" in err
    assert got["same_data_as_training"] is False and got["data_path"] == str(real)
    assert got["data_files"] != same["data_files"] and got["bytes"] != same["bytes"]
    model, tok, _ = load_model("run/checkpoint.pt")
    val = documents("corpus.txt", got["val_percent"], max_val_bytes=got["max_bytes"])[1]
    assert got["bits_per_byte"] == pytest.approx(evaluate_lm(model, tok, val, seq_len=16).bits_per_byte)


def test_eval_bpb_from_another_folder_says_the_recorded_path_is_relative_to_training(tmp_path, monkeypatch, capsys):
    # Once a bare "data path 'corpus.txt' does not exist".
    monkeypatch.chdir(tmp_path)
    open("corpus.txt", "w").write(_text(0))
    assert main(["pretrain", "--text", "corpus.txt", "--out", "run", *TINY_RUN]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["eval", "bpb", "--checkpoint", "../run/checkpoint.pt", "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"ncalm eval: error: data: data path 'corpus.txt' does not exist here ({tmp_path / 'elsewhere'}): it is the "
        f"data path ../run/checkpoint.pt recorded, relative to the folder it was trained in; pass --data with its "
        f"path from here\n")
    assert main(["eval", "bpb", "--checkpoint", "../run/checkpoint.pt", "--no-progress",
                 "--data", "../corpus.txt"]) == 0
    assert capsys.readouterr().out.startswith("../corpus.txt (validation, 1 document, ")  # once "1 documents"


def test_eval_bpb_on_another_corpus_says_it_is_not_the_training_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    open("corpus.txt", "w").write(_text(0))
    open("other.txt", "w").write(_text(1))
    assert main(["pretrain", "--text", "corpus.txt", "--out", "run", *TINY_RUN]) == 0
    rc, got, err = _bpb(capsys, "--data", "other.txt")
    assert rc == 0 and "changed since" not in err  # not the corpus it was trained on: nothing changed
    assert got["same_data_as_training"] is False and got["data_path"] == str(tmp_path / "other.txt")
    rc, got, _ = _bpb(capsys, "--data", str(tmp_path / "corpus.txt"))  # its own corpus, spelled otherwise
    assert rc == 0 and got["same_data_as_training"] is True


def _copy(src: Path, dst: Path) -> None:
    """A copy that keeps nothing but the bytes (new mtimes), as cp, a clone or another machine's install."""
    import shutil

    shutil.copytree(src, dst, copy_function=shutil.copyfile)


@pytest.mark.parametrize("change", ["touch", "copy", "grow"])
def test_eval_bpb_compares_a_corpus_by_its_files_names_and_sizes(tmp_path, monkeypatch, capsys, change):
    # Touched or copied elsewhere (another path, mtimes, working directory), the corpus is the same data
    # and its split the same: accepted. A file that grew is another corpus: refused.
    import os

    (tmp_path / "a" / "corpus" / "sub").mkdir(parents=True)
    for i, name in enumerate(["one.txt", "two.txt", "sub/three.txt"]):
        (tmp_path / "a" / "corpus" / name).write_text(_text(i))
    monkeypatch.chdir(tmp_path / "a")
    assert main(["pretrain", "--text", "corpus", "--out", "run", *TINY_RUN]) == 0
    before = _bpb(capsys)[1]
    if change == "touch":
        for f in Path("corpus").rglob("*.txt"):
            os.utime(f, ns=(1, 1))
    elif change == "copy":
        _copy(tmp_path / "a", tmp_path / "b")
        (tmp_path / "a" / "corpus" / "one.txt").unlink()  # so that only the copy can be read
        monkeypatch.chdir(tmp_path / "b")
    else:
        open("corpus/sub/three.txt", "a").write("one more line\n")
    rc, got, err = _bpb(capsys)
    if change == "grow":
        assert rc == 2 and err.count("\n") == 1 and "data: corpus (" in err and "changed since training" in err
        return
    assert rc == 0 and err == "" and got["same_data_as_training"] is True, err
    assert got["data_path"] == str(tmp_path / ("b" if change == "copy" else "a") / "corpus")
    assert got["data_files"] == before["data_files"] and got["bits_per_byte"] == before["bits_per_byte"]


def test_files_digest_of_stdlib_is_the_same_from_another_install(tmp_path, monkeypatch):
    # The tiny presets' default corpus: the same files, keyed alike, from another Python's library.
    import sysconfig

    from ncalm.data.corpus import stdlib_files
    from ncalm.data.tokens import files_digest

    def digest(root: Path) -> str:
        monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(root)})
        stdlib_files.cache_clear()
        return files_digest("stdlib")

    (tmp_path / "lib" / "json").mkdir(parents=True)
    (tmp_path / "lib" / "os.py").write_text("import sys\n")
    (tmp_path / "lib" / "json" / "__init__.py").write_text('"""json"""\n')
    try:
        here = digest(tmp_path / "lib")
        _copy(tmp_path / "lib", tmp_path / "other" / "lib")
        assert digest(tmp_path / "other" / "lib") == here
        (tmp_path / "other" / "lib" / "os.py").write_text("import sys, os\n")
        assert digest(tmp_path / "other" / "lib") != here
    finally:
        monkeypatch.undo()
        stdlib_files.cache_clear()


@pytest.mark.parametrize("change", ["retokenized", "same-size val.bin", "touch", "copy"])
def test_eval_bpb_compares_token_files_by_sizes_and_val_bin(tmp_path, monkeypatch, capsys, change):
    import os

    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    docs = [_text(0), _text(1), *SHARD_DOCS]
    _shards(tmp_path / "a" / "shards", docs, ByteTokenizer())
    assert main(["pretrain", "--text", "bin:shards", "--out", "run", *TINY_RUN]) == 0
    assert _bpb(capsys)[0] == 0
    val = tmp_path / "a" / "shards" / "val.bin"
    if change == "retokenized":  # tokenized again, with one more document
        _shards(tmp_path / "new", [*docs, _text(2)], ByteTokenizer())
        (tmp_path / "new" / "val.bin").replace(val)
    elif change == "same-size val.bin":  # as many tokens, others: what eval bpb evaluates, so its content counts
        tokens = np.fromfile(val, dtype=np.uint16)
        tokens[0] = ord("x") if tokens[0] != ord("x") else ord("y")
        tokens.tofile(val)
    elif change == "touch":
        for f in (val, val.with_name("train.bin")):
            os.utime(f, ns=(1, 1))
    else:
        _copy(tmp_path / "a", tmp_path / "b")
        monkeypatch.chdir(tmp_path / "b")
    rc, got, err = _bpb(capsys)
    if change in ("touch", "copy"):
        assert rc == 0 and got["same_data_as_training"] is True, err
        return
    assert rc == 2 and err.count("\n") == 1 and "data: bin:shards" in err and "changed since training" in err
    assert _bpb(capsys, "--data", "bin:shards")[1]["same_data_as_training"] is False


def test_a_touched_corpus_still_resumes(tmp_path, monkeypatch):
    # The file stamps are for evaluation; a resume reads the corpus again and compares its counts.
    import os

    monkeypatch.chdir(tmp_path)
    open("corpus.txt", "w").write(_text(0))
    assert main(["pretrain", "--text", "corpus.txt", "--out", "run", *TINY_RUN]) == 0
    os.utime("corpus.txt", ns=(1, 1))
    assert main(["pretrain", "--text", "corpus.txt", "--out", "run", *TINY_RUN, "--set", "run.tokens=512",
                 "--set", "run.resume=true"]) == 0


def test_eval_on_an_hf_folder_asks_for_what_it_does_not_record(tmp_path, capsys):
    # An HF folder holds no training data or NCA settings: bpb quietly scored stdlib, and icl said the model
    # "was not trained on NCA data" of an exported NCA model.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text to score. " * 400)
    lang = _checkpoint(tmp_path / "lang.pt", 257, {"kind": "text", "text": str(corpus)}, ByteTokenizer())
    assert main(["export-hf", str(lang), str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    assert main(["eval", "bpb", "--checkpoint", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncalm eval: error: data: ") and "records no training data" in err, err
    out = tmp_path / "r.json"
    assert main(["eval", "bpb", "--checkpoint", str(tmp_path / "hf"), "--data", str(corpus), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["data"] == str(corpus)
    assert main(["eval", "icl", "--checkpoint", str(tmp_path / "hf")]) == 2
    assert "records no NCA settings" in capsys.readouterr().err


def test_eval_icl_says_when_the_context_holds_no_frame_pair(tmp_path, capsys):
    nca = {"grid": 12, "colors": 2, "patch": 2}  # 38 tokens a frame: two need 76, the model holds 64
    torch.manual_seed(0)
    model = LlamaLM(ModelConfig(vocab_size=NCAConfig(**nca).vocab_size, n_layer=1, n_head=2, d_model=16,
                                max_seq_len=64))
    ck = tmp_path / "nca.pt"
    save_checkpoint(ck, {"model": model.state_dict(), "model_config": model.cfg.to_dict(), "tokenizer": None,
                         "train_config": {"data": {"kind": "nca", "seq_len": 64, "nca": nca}}})
    assert main(["eval", "icl", "--checkpoint", str(ck)]) == 2
    err = capsys.readouterr().err
    assert "context of 64 tokens cannot hold one frame of context plus the predicted frame (76 tokens)" in err, err
