"""Inputs that used to end in a traceback (or a misleading message) are
one-line errors naming the setting, refused before anything is allocated or
written; a size past the memory available says what it would need."""
import json
import os
import re

import numpy as np
import pytest

import ncalm
from ncalm import NCAConfig, NCAGenerator
from ncalm.cli import main

GIB = 1 << 30


@pytest.fixture
def one_gib(monkeypatch):
    """This machine, as far as the checks see, has 1 GiB available."""
    import ncalm.memory

    monkeypatch.setattr(ncalm.memory, "available_bytes", lambda: GIB)


def test_a_chunk_larger_than_the_run_allocates_only_what_is_written(tmp_path):
    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), "--sequences", "1", "--chunk", "100000000", "--no-progress"]) == 0
    assert (out / "nca_000000.bin").stat().st_size == 2 * 1025


def test_a_chunk_past_available_memory_is_refused_with_its_size(tmp_path, capsys, one_gib):
    out = tmp_path / "nca"
    argv = ["generate", "--out", str(out), "--sequences", "1M", "--chunk", "1000000", "--shard-tokens", "10G"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ncalm generate: error: --chunk 1000000: needs 5.7 GiB of memory, more than the 1.0 GiB "
                   "available")
    assert not out.exists()


@pytest.mark.parametrize("call, message", [
    (lambda: NCAGenerator(NCAConfig(), 0).batch(10**9), "n=1,000,000,000: needs 22,910.5 GiB"),
    (lambda: ncalm.sequence_tokens(NCAConfig(), 0, np.arange(10**6)), "seq_ids: 1,000,000 sequences: needs 3.8 GiB"),
    (lambda: ncalm.rollout(NCAConfig(), 0, [0], [0], frames=10**8), "frames=100,000,000 of 1 simulations: needs 13.4"),
])
def test_sizes_past_available_memory_are_refused_before_allocating(one_gib, call, message):
    with pytest.raises(ValueError, match="needs .* GiB of memory, more than the 1.0 GiB available") as info:
        call()
    assert message in str(info.value)


def test_an_nca_whose_per_thread_workspace_cannot_fit_is_refused_before_any_work(tmp_path, capsys, one_gib):
    # The core's simulator and scorer per thread: past the memory this was a std::bad_alloc traceback, after
    # generate had written its manifest.
    big = NCAConfig(grid=4096, patch=1, score_frames=256)
    for call in (lambda: ncalm.find_rules(big, 0, [0], threads=1), lambda: ncalm.score_rules(big, 0, [0], threads=1),
                 lambda: ncalm.sequence_tokens(big, 0, [0], threads=1)):
        with pytest.raises(ValueError, match=r"nca.grid 4096, nca.patch 1, nca.score_frames 256 \(per thread\): "
                                             r"needs 16.8 GiB"):
            call()
    out = tmp_path / "nca"
    argv = ["generate", "--out", str(out), "--grid", "4096", "--patch", "1", "--nca.score_frames", "256",
            "--threads", "1", "--sequences", "1"]
    assert main(argv) == 2
    assert "(per thread): needs 16.8 GiB of memory" in capsys.readouterr().err
    assert not out.exists()


def test_a_memory_error_no_check_foresaw_is_one_line(monkeypatch, capsys):
    import ncalm.cli.show

    def boom(args):
        raise MemoryError("std::bad_alloc")
    monkeypatch.setattr(ncalm.cli.show, "run", boom)
    assert main(["show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ncalm show: error: out of memory (std::bad_alloc)"), err


@pytest.mark.parametrize("call, error, message", [
    (lambda: NCAGenerator(NCAConfig(), 0).load_state_dict({}), ValueError, "state has no 'cfg'"),
    (lambda: NCAGenerator(NCAConfig(), 0).load_state_dict(None), ValueError, "state has no 'cfg'"),
    (lambda: NCAGenerator({"grid": 12}, 0), TypeError, "cfg must be an NCAConfig"),
])
def test_bad_generator_api_inputs_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _tiny_lm():
    from ncalm.lm.model import LlamaLM, ModelConfig

    return LlamaLM(ModelConfig(vocab_size=257, n_layer=1, n_head=1, d_model=8, max_seq_len=16))


def _api_calls():
    """Public functions called from Python with a plain argument no settings tree checked."""
    from ncalm.data.corpus import documents
    from ncalm.data.sharding import make_loader
    from ncalm.data.tokens import TokenSource
    from ncalm.lm.sampling import generate
    from ncalm.lm.tokenizer import ByteTokenizer
    from ncalm.nca.pictures import palette, save_complexity_histogram, tile

    tokens = np.arange(100, dtype=np.uint16)
    return [
        (lambda: documents("stdlib", 0), "val_percent must be in (0, 100), got 0"),
        (lambda: make_loader(None, 1, workers=-1), "workers must be >= 0, got -1"),
        (lambda: TokenSource(tokens, tokens, 256, 0), "seq_len must be >= 1, got 0"),
        (lambda: generate(_tiny_lm(), ByteTokenizer(), ["a"], n=0), "the number of samples per prompt must be >= 1"),
        (lambda: palette(0), "colors must be >= 1, got 0"),
        (lambda: tile(np.zeros((1, 1, 2, 2)), scale=0), "scale must be >= 1 and gap >= 0"),
        (lambda: save_complexity_histogram([], (0.5, 1.0), os.devnull), "no candidate rules to plot"),
    ]


@pytest.mark.parametrize("index", range(7))
def test_bad_plain_arguments_of_the_python_api_are_named(index):
    call, message = _api_calls()[index]
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_a_fifo_as_corpus_says_what_it_is(tmp_path, capsys):
    fifo = tmp_path / "corpus.txt"
    os.mkfifo(fifo)
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), "--text", str(fifo), "--steps", "1", "--warmup", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"data path {str(fifo)!r} is neither a regular file nor a directory" in err and err.count("\n") == 0
    assert not out.exists()


def test_speedup_takes_a_run_directory(tmp_path, capsys):
    for name, loss in (("base", 3.0), ("run", 2.5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text("".join(
            json.dumps({"tokens": t, "val_loss": 4.0 - t / 100 * (4.0 - loss)}) + "\n" for t in (0, 50, 100)))
    assert main(["eval", "speedup", "--baseline", str(tmp_path / "base"), "--run", str(tmp_path / "run")]) == 0
    (tmp_path / "empty").mkdir()
    assert main(["eval", "speedup", "--baseline", str(tmp_path / "base"), "--run", str(tmp_path / "empty")]) == 2
    assert f"metrics file not found: {tmp_path / 'empty' / 'metrics.jsonl'}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["prepretrain", "--data", "dyck", "--steps", "1"], ["generate", "--sequences", "1"],
                                  ["show"], ["tokenize", "--text", "stdlib"]])
def test_an_empty_output_folder_is_refused_not_the_current_one(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # where "" and " " once wrote
    for out in ("", " "):
        assert main([*argv, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("must name a folder, got" in err or "no output folder given" in err)
    assert not list(tmp_path.iterdir())


def _exit_code(argv: list[str]) -> int:
    """What `ncalm ARGV` exits with, whether the command or argparse refuses the input."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("argv, named", [
    (["generate", "--sequences", "1", "--out"], "out"), (["prepretrain", "--steps", "1", "--out"], "run.out_dir"),
    (["pretrain", "--steps", "1", "--out"], "run.out_dir"), (["prepretrain", "--set"], "run.out_dir"),
    (["show", "--out"], "out"), (["tokenize", "--text", "stdlib", "--out"], "out"),
    (["eval-reasoning", "--checkpoint", "x.pt", "--out"], "out"), (["experiment", "--out"], "--out"),
    (["sweep", "--preset", "sweep-tiny", "--out"], "--out"), (["band", "--out"], "--out"),
    (["export-hf", "x.pt"], "out"), (["export-hf", "x.pt", "--out"], "out")])
def test_a_file_given_as_output_folder_is_refused_by_its_setting(argv, named, tmp_path, monkeypatch, capsys):
    # Once an OSError from mkdir at the end of the checks: "[Errno 17] File exists: 'OUT'", naming no option.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("keep")
    (tmp_path / "link").symlink_to("nowhere")  # once called "a file"
    for out, problem in (("file", "is a file, not a folder"), ("file/sub", "is inside file, which is a file"),
                         ("link", "is a broken link (to nowhere), not a folder"),
                         ("link/sub", "is inside link, which is a broken link (to nowhere), not a folder")):
        value = f"run.out_dir={out}" if argv[-1] == "--set" else out
        assert _exit_code([*argv, value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: {named}: {problem}" in err and f"got {out!r}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "link"] and (tmp_path / "file").read_text() == "keep"
    assert not (tmp_path / "nowhere").exists()


TINY_PRETRAIN = ["--text", "corpus.txt", "--tokenizer", "byte", "--steps", "1", "--seq-len", "16", "--batch-size", "1",
                 "--warmup", "1", "--eval-every", "0", "--val-sequences", "1", "--threads", "1", "--no-progress"]


def _block(path, kind: str) -> None:
    """Put a file, or a link to nothing, where a command's default output folder would go."""
    if kind == "file":
        path.write_text("keep")
    else:
        path.symlink_to("nowhere")


@pytest.mark.parametrize("kind", ["file", "broken link"])
def test_a_file_where_a_default_output_folder_would_go_breaks_only_that_default(kind, tmp_path, monkeypatch, capsys):
    # Once the default run.out_dir (runs/run) was checked against the disk whenever a stage config was built,
    # --help's defaults and presets included: every stage command crashed with a traceback.
    monkeypatch.chdir(tmp_path)
    _block(tmp_path / "runs", kind)
    (tmp_path / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 400)
    for command in ("prepretrain", "pretrain", "experiment", "sweep", "band"):
        assert _exit_code([command, "--help"]) == 0
    capsys.readouterr()
    out = tmp_path / "elsewhere"
    assert main(["pretrain", "--out", str(out), *TINY_PRETRAIN]) == 0 and (out / "checkpoint.pt").exists()
    assert main(["experiment", "--out", str(tmp_path / "experiment"), "--dry-run"]) == 0
    # The default, in use, is refused by its setting, in one line, before any work.
    for argv, named in ((["pretrain", *TINY_PRETRAIN], "run.out_dir"), (["experiment"], "--out")):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: {named}: is inside runs, which is a {kind}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "elsewhere", "runs"]  # a dry run writes nothing


def test_a_file_named_show_does_not_stop_show_writing_elsewhere(tmp_path, monkeypatch):
    # Once `show --out pics` failed on the default out ("show") it did not use.
    monkeypatch.chdir(tmp_path)
    _block(tmp_path / "show", "file")
    assert main(["show", "--grid", "6", "--colors", "2", "--band", "none", "--rules", "1", "--frames", "2",
                 "--candidates", "10", "--threads", "1", "--out", "pics"]) == 0
    assert (tmp_path / "pics" / "trajectories.png").exists() and (tmp_path / "show").read_text() == "keep"


def test_export_hf_refuses_an_empty_output_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export-hf", "missing.pt", " "]) == 2
    assert capsys.readouterr().err.strip() == "ncalm export-hf: error: out: must name a folder, got ' '"
    assert not list(tmp_path.iterdir())
