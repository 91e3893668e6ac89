"""How the `ncalm` commands answer mistakes: one line naming the command for an unknown option,
counts in every notation, refusing to train over a finished run, flags named in advice, and a closed stdout."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ncalm
from ncalm.cli import COMMANDS, build_parser, main
from ncalm.settings import parse_count

# Required options, so that the unknown one is what the parser trips on.
REQUIRED = {"generate": ["--out", "x"], "eval-reasoning": ["--checkpoint", "x.pt"], "eval": ["bpb", "--checkpoint", "x"],
            "export-hf": ["x.pt", "out"]}


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_an_unknown_option_is_one_line_naming_the_command(name, capsys):
    # Once the command's whole usage first: 34 lines for prepretrain.
    with pytest.raises(SystemExit) as stop:
        main([name, *REQUIRED.get(name, []), "--bogus", "1"])
    assert stop.value.code == 2
    command = " ".join([name] + (["bpb"] if name == "eval" else []))
    assert capsys.readouterr().err == (f"ncalm {command}: error: unrecognized arguments: --bogus 1 "
                                       f"(see ncalm {command} --help)\n")


@pytest.mark.parametrize("argv, said", [
    (["pretrain", "--data", "x"], "unrecognized arguments: --data x"),  # not --data.* or --data-seed
    (["prepretrain", "--war", "3"], "unrecognized arguments: --war 3"),  # not --warmup
    (["generate", "--out", "x", "--tok", "5"], "unrecognized arguments: --tok 5"),  # not --tokens
    (["prepretrain", "--lr"], "argument --lr/--optim.lr: expected one argument"),
    (["bogus"], "argument COMMAND: invalid choice: 'bogus' (choose from 'generate', "),
    # The example fits the command's tree (it was the experiment's language.run.tokens=... everywhere).
    (["pretrain", "--set", "lr"], "argument --set: expected KEY=VALUE, e.g. optim.lr=3e-4, got 'lr'"),
    (["experiment", "--set", "=3"], "argument --set: expected KEY=VALUE, e.g. language.optim.lr=3e-4, got '=3'"),
])
def test_options_are_taken_by_their_whole_name_and_errors_are_one_line(argv, said, capsys):
    # A prefix was once taken for the one option it begins, or refused with every option it could be: for
    # pretrain --data, 25 lines, the last "ambiguous option: --data could match" 30 options.
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    command = "ncalm" + (f" {argv[0]}" if argv[0] != "bogus" else "")
    assert err.startswith(f"{command}: error: {said}") and err.endswith(f" (see {command} --help)\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize("text, value", [("5000", 5000), ("64k", 64_000), ("1.5B", 1_500_000_000),
                                         ("1.1B", 1_100_000_000), ("1e6", 10**6), ("2.5e3", 2500), ("1E6", 10**6)])
def test_counts_take_suffixes_and_scientific_notation(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["1.5", "2.5e0", "1e-3", "1.2345k", "lots"])
def test_counts_that_are_not_whole_numbers_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected a whole count like .* got '{text}'"):
        parse_count(text)


def test_count_options_parse_scientific_notation(capsys):
    args = build_parser("pretrain").parse_args(["pretrain", "--max-tokens", "1e6", "--max-bytes", "2.5e3"])
    assert (vars(args)["@run.tokens"], vars(args)["@data.text.max_bytes"]) == (10**6, 2500)
    with pytest.raises(SystemExit):
        main(["pretrain", "--max-bytes", "1.5"])
    assert "argument --max-bytes/--data.text.max_bytes: expected a whole count" in capsys.readouterr().err


TINY = ["--data", "dyck", "--steps", "2", "--seq-len", "32", "--batch-size", "1", "--warmup", "1",
        "--eval-every", "0", "--val-sequences", "2", "--threads", "1", "--no-progress"]


def test_a_run_directory_holding_a_checkpoint_needs_resume_or_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["prepretrain", "--out", str(out), *TINY, "--stop-at", "1"]) == 0
    checkpoint = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["prepretrain", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume to continue" in err and "--force to start over" in err
    assert (out / "checkpoint.pt").read_bytes() == checkpoint  # untouched
    assert main(["pretrain", "--out", str(out), "--steps", "1"]) == 2  # the language stage too
    assert "--resume" in capsys.readouterr().err
    assert main(["prepretrain", "--out", str(out), *TINY, "--resume"]) == 0
    assert "2/2 steps" in capsys.readouterr().out
    assert main(["prepretrain", "--out", str(out), *TINY, "--force", "--stop-at", "1"]) == 0
    assert "1/2 steps" in capsys.readouterr().out  # started over
    assert main(["prepretrain", "--out", str(out), *TINY, "--force", "--resume"]) == 2
    assert "--resume continues the run in --out and --force replaces it" in capsys.readouterr().err
    # --init of the very checkpoint --out holds: neither flag may replace it.
    # Nor its best.pt, which a fresh start removes.
    (out / "best.pt").write_bytes(checkpoint)
    for name in ("checkpoint.pt", "best.pt"):
        for flag in ([], ["--force"]):
            assert main(["pretrain", "--init", str(out / name), "--out", str(out), "--steps", "1", *flag]) == 2
            assert "is a checkpoint this run would overwrite" in capsys.readouterr().err
    assert (out / "checkpoint.pt").exists() and (out / "best.pt").exists()


def _train_config(*argv):
    from ncalm.cli.train_options import stage_config

    return stage_config(build_parser("prepretrain").parse_args(["prepretrain", *argv]))


def test_a_warmup_longer_than_the_run_is_announced(capsys):
    from ncalm.cli.train_options import warn_long_warmup

    warn_long_warmup(_train_config("--steps", "20", "--warmup", "100"))
    assert capsys.readouterr().err == ("warning: --warmup 100 is longer than the run's 20 steps: the learning rate "
                                       "only rises, to 20% of --lr, and never decays\n")
    # --max-tokens sets the steps: 8 x 256 tokens per step, so 4096 tokens are 2 steps.
    warn_long_warmup(_train_config("--max-tokens", "4096", "--warmup", "3"))
    assert "the run's 2 steps" in capsys.readouterr().err
    warn_long_warmup(_train_config("--steps", "20", "--warmup", "20"))
    assert capsys.readouterr().err == ""


def test_gen_device_cuda_without_a_gpu_names_the_setting(tmp_path, capsys):
    from ncalm.nca.cuda import cuda_status

    if cuda_status()[0]:
        pytest.skip("a usable GPU is present: --gen-device cuda is served")
    out = tmp_path / "run"
    for given in (["--gen-device", "cuda"], ["--set", "data.gen_device=cuda"]):
        assert main(["prepretrain", "--out", str(out), *given, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ncalm prepretrain: error: data.gen_device: 'cuda' needs a CUDA GPU: ")
        assert err.endswith("; use cpu or auto\n") and err.count("\n") == 1 and "device='cpu'" not in err
    assert not out.exists()  # refused before any work


def test_epoch_sequences_help_says_what_0_means():
    parser = build_parser("prepretrain")
    sub = next(a for a in parser._actions if a.dest == "command").choices["prepretrain"]
    [action] = [a for a in sub._actions if a.dest == "@data.epoch_sequences"]
    assert "0 = pool_size" in action.help


@pytest.mark.parametrize("argv, message", [
    (["--data", "dyck", "--data-seed", "-1"], "data.seed: must be in [0, 2**64), got -1"),
    (["--data", "nca", "--data-seed", str(2**64)], f"data.seed: must be in [0, 2**64), got {2**64}"),
    (["--data", "dyck", "--seed", str(2**64)], f"run.seed: must be in [-2**63, 2**64), got {2**64}"),
])
def test_seeds_out_of_range_name_their_option_before_any_data_is_read(tmp_path, argv, message, capsys):
    # A negative --data-seed used to surface as numpy's "expected non-negative integer" after loading the data.
    assert main(["prepretrain", "--out", str(tmp_path / "r"), *argv, "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_negative_model_seed_still_trains_as_torch_takes_it(tmp_path):
    # torch.manual_seed takes negative seeds; runs made with one must keep resuming.
    out = tmp_path / "neg"
    assert main(["prepretrain", "--out", str(out), *TINY, "--seed", "-1", "--stop-at", "1"]) == 0
    assert main(["prepretrain", "--out", str(out), *TINY, "--seed", "-1", "--resume"]) == 0


def test_stopping_before_the_first_log_step_still_reports(tmp_path, capsys):
    # No train loss is logged before --log-every: the summary crashed formatting None.
    out = tmp_path / "early"
    argv = ["prepretrain", "--out", str(out), *TINY, "--log-every", "10", "--eval-every", "1", "--stop-at", "1"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "1/2 steps" in said and "validation loss" in said and "train loss" not in said


def _closed_pipe_run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`ncalm ARGV | head` with head already gone: stdout a pipe whose reader is closed."""
    env = {**os.environ, "PYTHONPATH": str(Path(ncalm.__file__).resolve().parents[1])}  # this ncalm, from cwd
    env.pop("PYTHONUNBUFFERED", None)  # stdout buffered, as by default: the closed pipe shows at the last flush
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "ncalm", *argv], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=cwd, env=env, timeout=120)
    finally:
        os.close(write)


@pytest.mark.parametrize("argv", [["sweep", "--preset", "sweep-tiny", "--out", "s", "--plan"],
                                  ["generate", "--sequences", "2", "--seq-len", "15", "--out", "g", "--no-progress"],
                                  ["--help"], ["generate", "--help"]])  # --help once ended 0 (argparse's exit)
def test_a_closed_stdout_ends_quietly(tmp_path, argv):
    # `ncalm sweep --plan | head` ended with "ncalm sweep: error: [Errno 32] Broken pipe" (status 2).
    done = _closed_pipe_run(argv, tmp_path)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.parametrize("raised, status, said", [("RuntimeError('a real bug')", 1, "RuntimeError: a real bug"),
                                                  ("ValueError('bad value')", 2, "ncalm generate: error: bad value")])
def test_a_closed_stdout_hides_no_other_error_nor_its_status(tmp_path, raised, status, said):
    # The flush of a closed stdout in a `finally` replaced a command's own error: status 141, stderr empty.
    code = ("import sys\nimport ncalm.cli.generate as generate\nfrom ncalm.cli import main\n"
            f"def run(args):\n    print('some output')\n    raise {raised}\n"
            "generate.run = run\nsys.exit(main(['generate', '--out', 'x']))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(ncalm.__file__).resolve().parents[1])}
    env.pop("PYTHONUNBUFFERED", None)  # the print is buffered, as by default: the flush at the end fails
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-c", code], stdout=write, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env=env, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == status and said in done.stderr, (done.returncode, done.stderr)


def test_a_broken_pipe_other_than_stdout_is_still_an_error(monkeypatch, capsys):
    import ncalm.cli.generate as generate

    def run(args):
        raise BrokenPipeError(32, "Broken pipe")  # a child's pipe, say: stdout is fine

    monkeypatch.setattr(generate, "run", run)
    assert main(["generate", "--out", "x"]) == 2
    assert capsys.readouterr().err == "ncalm generate: error: [Errno 32] Broken pipe\n"


def test_a_choice_that_may_be_unset_is_refused_without_listing_none(capsys):
    assert main(["pretrain", "--model", "huge"]) == 2  # argparse listed 'tiny', ..., 'paper', None
    assert capsys.readouterr().err == ("ncalm pretrain: error: model.size: must be one of tiny, mini, small, base, "
                                       "large, paper or unset, got 'huge'\n")


@pytest.mark.parametrize("command", ["prepretrain", "pretrain"])
def test_the_stage_token_budget_is_tokens_as_in_generate_and_max_tokens_still(command):
    for flag in ("--tokens", "--max-tokens"):
        assert vars(build_parser(command).parse_args([command, flag, "1M"]))["@run.tokens"] == 10**6
