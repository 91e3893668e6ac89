"""Reuse only what verifies: a finished experiment stage whose checkpoint was
altered or swapped is refused by name instead of skipped; damaged JSON
records are one-line errors naming the file; eval-reasoning scores its
cached samples again from their completions, not from stored counts."""
import json
import shutil

import pytest

from ncalm.cli import main

CONFIG = """
name = "reuse-test"
seeds = [0]
threads = 1
arms = ["dyck"]
[prepretrain]
tokens = 512
seq_len = 32
batch_size = 4
warmup_steps = 1
[language]
data = "{corpus}"
val_percent = 20.0
max_val_bytes = 4000
tokens = 1024
seq_len = 32
batch_size = 4
warmup_steps = 1
eval_every = 4
eval_batches = 1
bpb_bytes = 0
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-arm experiment, copied fresh into each test."""
    root = tmp_path_factory.mktemp("finished")
    (root / "corpus").mkdir()
    words = "the of cell rule grid token frame state loss model data python code value".split()
    for i in range(10):
        (root / "corpus" / f"doc{i}.txt").write_text(" ".join(words[(i * 7 + j * j) % len(words)] for j in range(300)))
    (root / "exp.toml").write_text(CONFIG.format(corpus=root / "corpus"))
    assert main(_argv(root / "out", root)) == 0
    return root


def _argv(out, root):
    return ["experiment", "--config", str(root / "exp.toml"), "--out", str(out), "--no-progress"]


@pytest.fixture
def experiment(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished / "out", out)
    return out, _argv(out, finished)


def _flip_byte(path, offset=1000):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(data)


def test_an_untouched_experiment_is_skipped(experiment):
    out, argv = experiment
    assert main(argv) == 0


@pytest.mark.parametrize("stage", ["language", "prepretrain"])
def test_a_flipped_byte_in_a_finished_checkpoint_is_refused_by_name(experiment, capsys, stage):
    out, argv = experiment
    stage_dir = out / "seed0" / "dyck" / stage
    _flip_byte(stage_dir / "checkpoint.pt")
    results = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"finished stage {stage_dir}" in err and "corrupt" in err and f"delete {stage_dir}" in err
    assert len(err.splitlines()) == 1
    assert (out / "results.json").read_bytes() == results  # no report from a run that does not verify


def test_a_swapped_checkpoint_is_refused_by_its_recorded_hash(experiment, capsys):
    out, argv = experiment
    run = out / "seed0" / "dyck"
    # A whole, valid checkpoint, but not the language stage's own.
    shutil.copy(run / "prepretrain" / "checkpoint.pt", run / "language" / "checkpoint.pt")
    assert main(argv) == 2
    assert "is not the one the stage finished with" in capsys.readouterr().err


def test_a_finished_stage_of_an_unfinished_run_is_verified_before_reuse(experiment, capsys):
    out, argv = experiment
    run = out / "seed0" / "dyck"
    (run / "result.json").unlink()  # killed after the first stage finished
    shutil.rmtree(run / "language")
    _flip_byte(run / "prepretrain" / "checkpoint.pt")
    assert main(argv) == 2
    assert f"finished stage {run / 'prepretrain'}" in capsys.readouterr().err
    assert not (run / "language").exists()  # the next stage did not start from it


@pytest.mark.parametrize("name, text", [
    ("seed0/dyck/result.json", '{"arm": "dyck", "kind": "dyck"}'),  # no seed
    ("seed0/dyck/result.json", '{"arm": "dy'),
    ("seed0/dyck/language/done.json", "[]"),
    ("experiment.json", '{"name": "reuse-te'),  # torn
])
def test_damaged_records_are_one_line_errors_naming_the_file(experiment, capsys, name, text):
    out, argv = experiment
    (out / name).write_text(text)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert str(out / name) in err and len(err.splitlines()) == 1


def test_eval_reasoning_scores_cached_samples_again(tmp_path, capsys, tiny_gsm8k):
    checkpoint, data = tiny_gsm8k
    argv = ["eval-reasoning", "--task", "gsm8k", "--checkpoint", str(checkpoint), "--data", str(data),
            "--out", str(tmp_path), "--shots", "0", "--n-samples", "2", "--k", "1", "--max-new-tokens", "4",
            "--no-progress"]
    assert main(argv) == 0
    honest = json.loads((tmp_path / "results.json").read_text())["overall"]
    assert honest["pass@k"]["1"] == 0.0  # an untrained model answers nothing right
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    records[0]["c"] = 2  # a count raised while the samples say otherwise
    for s in records[1]["samples"]:
        s["correct"] = True  # flags raised on wrong completions
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    capsys.readouterr()
    assert main(argv) == 0
    assert "2 stored problem records" in capsys.readouterr().err
    assert json.loads((tmp_path / "results.json").read_text())["overall"] == honest
    assert [json.loads(line)["c"] for line in (tmp_path / "samples.jsonl").read_text().splitlines()] == [0, 0, 0]


def test_a_cached_record_without_completions_is_refused_by_name(tmp_path, capsys, tiny_gsm8k):
    checkpoint, data = tiny_gsm8k
    argv = ["eval-reasoning", "--task", "gsm8k", "--checkpoint", str(checkpoint), "--data", str(data),
            "--out", str(tmp_path), "--shots", "0", "--n-samples", "1", "--max-new-tokens", "4", "--no-progress"]
    assert main(argv) == 0
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "samples": [{"correct": True}]})
    (tmp_path / "samples.jsonl").write_text("\n".join(lines) + "\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "samples.jsonl") in err and "test/1" in err
