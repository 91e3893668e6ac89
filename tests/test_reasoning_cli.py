"""`ncalm eval-reasoning` end to end on a tiny random checkpoint: tables,
resume, settings checks and one-line errors."""
import json
import os
from pathlib import Path

import pytest
import torch

from ncalm.lm.checkpoint import save_checkpoint
from ncalm.cli import build_parser, main
from ncalm.lm.model import LlamaLM, model_config
from ncalm.eval.reasoning.results import ResultsStore, summarize
from ncalm.lm.tokenizer import ByteTokenizer

DATA = Path(__file__).parent / "fixtures"  # excerpts of the benchmarks: fixtures/README.md
FAST = ["--limit", "2", "--n-samples", "2", "--k", "1,2", "--max-new-tokens", "12", "--threads", "1"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = LlamaLM(model_config("tiny", vocab_size=tok.vocab_size, max_seq_len=256))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.cfg.to_dict(),
                           "tokenizer": tok.to_dict()})
    return path


@pytest.fixture(autouse=True, scope="module")
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(*argv):
    return main(["eval-reasoning", *map(str, argv)])


@pytest.mark.parametrize("task, extra", [
    ("gsm8k", ["--shots", "1"]),
    ("humaneval", ["--timeout", "5"]),
    ("bbh", ["--bbh-tasks", "navigate,snarks"]),
])
def test_each_task_writes_samples_and_tables(checkpoint, tmp_path, task, extra, capsys):
    out = tmp_path / task
    assert run("--task", task, "--checkpoint", checkpoint, "--data", DATA / task, "--out", out,
               *FAST, *extra) == 0
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["n"] == 2 and len(r["samples"]) == 2 for r in records)
    result = json.loads((out / "results.json").read_text())
    expected = sum(r["c"] / r["n"] for r in records) / 2
    assert result["overall"]["pass@k"]["1"] == pytest.approx(expected)
    assert result["overall"]["problems"] == 2 and result["config"]["task"] == task
    # Titled by the path as given: once its file name only, "checkpoint.pt" for every arm of an experiment.
    assert (out / "results.md").read_text().startswith(f"## {task}: {checkpoint}\n")
    assert "| all | 2 | 2 |" in (out / "results.md").read_text()
    assert "pass@2" in capsys.readouterr().out
    standard = out / f"{task}_samples.jsonl"
    assert standard.exists() == (task != "bbh")
    rows = [json.loads(line) for line in standard.read_text().splitlines()] if task != "bbh" else []
    completions = [s["completion"] for r in records for s in r["samples"]]
    if task == "humaneval":
        assert all(s["status"] in ("passed", "failed", "timed out") for r in records for s in r["samples"])
        assert rows == [{"task_id": r["id"], "completion": s["completion"]} for r in records for s in r["samples"]]
        assert rows[0]["task_id"] == "HumanEval/0"
    if task == "gsm8k":
        questions = [json.loads(line)["question"] for line in (DATA / "gsm8k/test.jsonl").read_text().splitlines()]
        assert [row["question"] for row in rows] == [q for q in questions[:2] for _ in range(2)]
        assert [row["answer"] for row in rows] == completions and set(rows[0]) == {"question", "answer"}
    if task == "bbh":
        assert sorted(result["groups"]) == ["navigate", "snarks"]


def test_device_auto_is_the_default_and_samples_where_the_model_is(checkpoint, tmp_path):
    # "auto" reached torch.Generator(device="auto") unresolved: a RuntimeError traceback.
    common = ["--task", "gsm8k", "--checkpoint", checkpoint, "--data", DATA / "gsm8k", "--shots", "0", *FAST]
    assert run(*common, "--out", tmp_path / "auto", "--device", "auto") == 0
    assert run(*common, "--out", tmp_path / "default") == 0
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    from ncalm.cli.reasoning import ReasoningConfig

    assert ReasoningConfig(checkpoint="x").device == "auto"
    if expected == "cpu":  # the same samples as an explicit --device cpu
        assert run(*common, "--out", tmp_path / "cpu", "--device", "cpu") == 0
        assert ((tmp_path / "auto/samples.jsonl").read_text() == (tmp_path / "cpu/samples.jsonl").read_text())


def test_a_resume_on_the_other_device_is_refused(checkpoint, tmp_path):
    # CPU and CUDA generators draw different samples from one seed: a run begun on one
    # must not be finished on the other (the default device is auto).
    from ncalm.cli.reasoning import ReasoningConfig, _config
    from ncalm.eval.reasoning.tasks import TaskSpec

    args, spec = ReasoningConfig(checkpoint=str(checkpoint)), TaskSpec([], ("\n",), 12, lambda item, c: [], 8)
    cpu, cuda = _config(args, spec, 12, "cpu"), _config(args, spec, 12, "cuda")
    assert "sampling_device" not in cpu  # CPU results made before the key still resume
    assert cuda == {**cpu, "sampling_device": "cuda"}
    ResultsStore(tmp_path, cpu)
    with pytest.raises(ValueError, match=r"sampling_device: \(unset\) -> \"cuda\""):
        ResultsStore(tmp_path, cuda)


def test_resume_adds_only_missing_problems(checkpoint, tmp_path):
    args = ["--task", "gsm8k", "--checkpoint", checkpoint, "--data", DATA / "gsm8k",
            "--out", tmp_path, "--shots", "0", *FAST]
    assert run(*args) == 0
    samples = tmp_path / "samples.jsonl"
    first = samples.read_text().splitlines()
    # An interrupted write leaves a partial line: that problem is redone.
    samples.write_text("\n".join(first) + '\n{"id": "test/2", "gro')
    assert run(*args[:-len(FAST)], *FAST[2:], "--limit", "3") == 0
    lines = samples.read_text().splitlines()
    assert lines[:2] == first and len(lines) == 3 and json.loads(lines[2])["id"] == "test/2"
    # The same problems sampled again from scratch give the same completions.
    fresh = tmp_path / "fresh"
    assert run(*args[:6], "--out", fresh, *args[8:]) == 0
    assert (fresh / "samples.jsonl").read_text().splitlines() == first


def test_ctrl_c_says_what_is_kept_and_the_same_command_goes_on_from_there(checkpoint, tmp_path, capsys,
                                                                           monkeypatch):
    # Once just "interrupted".
    from ncalm.lm import sampling

    real, calls = sampling.generate, []

    def generate(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sampling, "generate", generate)
    args = ["--task", "gsm8k", "--checkpoint", checkpoint, "--data", DATA / "gsm8k", "--out", tmp_path,
            "--shots", "0", "--no-progress", *FAST]
    assert run(*args) == 130
    said = capsys.readouterr().err
    assert said.endswith(f"\nncalm eval-reasoning: interrupted; the results of 1 problem are kept in "
                         f"{tmp_path / 'samples.jsonl'}: run the same command again to go on from there\n")
    assert run(*args) == 0 and len(calls) == 3  # the second problem only
    assert [json.loads(line)["id"] for line in (tmp_path / "samples.jsonl").read_text().splitlines()] == \
        ["test/0", "test/1"]


def test_changed_settings_are_refused(checkpoint, tmp_path, capsys):
    base = ["--task", "gsm8k", "--checkpoint", checkpoint, "--data", DATA / "gsm8k",
            "--out", tmp_path, "--shots", "0", *FAST]
    assert run(*base) == 0
    assert run(*base, "--temperature", "0.9") == 2
    assert "temperature: " in capsys.readouterr().err
    # Settings of other tasks, and the default spelled out, change nothing here.
    assert run(*base, "--timeout", "9", "--bbh-cot") == 0
    relative = Path(os.path.relpath(DATA / "gsm8k"))
    assert run("--task", "gsm8k", "--checkpoint", checkpoint, "--data", relative, "--out", tmp_path,
               "--shots", "0", *FAST) == 0


@pytest.mark.parametrize("layout", ["checkpoint file", "hugging face folder"])
def test_other_weights_at_the_same_path_are_refused(tmp_path, capsys, layout):
    # Results of two models must not be averaged because a checkpoint was overwritten. A folder
    # (what export-hf writes) once failed here with "[Errno 21] Is a directory".
    from ncalm.lm.hf import export_hf

    path = tmp_path / ("ck.pt" if layout == "checkpoint file" else "hf")
    for seed, expected in ((0, 0), (1, 2)):
        torch.manual_seed(seed)
        tok = ByteTokenizer()
        model = LlamaLM(model_config("tiny", vocab_size=tok.vocab_size, max_seq_len=256))
        if layout == "checkpoint file":
            save_checkpoint(path, {"model": model.state_dict(), "model_config": model.cfg.to_dict(),
                                   "tokenizer": tok.to_dict()})
        else:
            export_hf(model, tok, path)
        runs = 2 if expected == 0 else 1  # the same weights a second time resume: nothing is left to do
        for i in range(runs):
            if layout == "hugging face folder":  # files the model is not read from do not count
                (path / "notes.md").write_text(f"run {i}")
            assert run("--task", "gsm8k", "--checkpoint", path, "--data", DATA / "gsm8k", "--out", tmp_path / "o",
                       "--shots", "0", *FAST) == expected
    assert "checkpoint_sha256: " in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--k", "1,4", "--n-samples", "2"], "k: each k must be in [1, n_samples=2], got '1,4'"),
    (["--k", "one"], "k: expected 'auto' or comma-separated integers, got 'one'"),
    (["--n-samples", "3", "--temperature", "0"], "greedy"),
    (["--top-p", "1.5"], "top_p: must be in (0, 1], got 1.5"),
    (["--temperature", "nan"], "temperature: must be in [0, inf), got nan"),
    (["--limit", "0"], "limit: must be >= 1, got 0"),
    (["--task", "bbh", "--finetune"], "finetune: applies to --task gsm8k only"),
    (["--device", "tpu"], "device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    # These two reached torch after the model had loaded (a seed past torch's range, and AdamW's lr check).
    (["--seed", str(2**64 - 1)], "seed: must be in [-2**63, 2**64 - 2**32), got 18446744073709551615"),
    (["--finetune", "--finetune-lr", "-1"], "finetune_lr: must be > 0, got -1.0"),
    # An interpreter that cannot run scored every completion as failed, and the run exited 0.
    (["--task", "humaneval", "--data", DATA / "humaneval", "--sandbox-python", "/nonexistent"],
     "--sandbox-python /nonexistent: cannot run a program in the sandbox (FileNotFoundError"),
])
def test_bad_options_give_one_line_errors(checkpoint, argv, message, capsys):
    assert run("--checkpoint", checkpoint, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_nca_only_checkpoint_is_refused(tmp_path, capsys):
    model = LlamaLM(model_config("tiny", vocab_size=20, max_seq_len=64))
    path = save_checkpoint(tmp_path / "nca.pt", {"model": model.state_dict(),
                                                 "model_config": model.cfg.to_dict()})
    assert run("--checkpoint", path, "--data", DATA / "gsm8k", "--out", tmp_path / "o", *FAST) == 2
    assert "tokenizer" in capsys.readouterr().err


def test_every_option_has_help_and_a_default():
    parser = build_parser("eval-reasoning")
    sub = next(a for a in parser._actions if a.dest == "command").choices["eval-reasoning"]
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help, action.dest
        assert action.required or action.default is not None or "default" in action.help, action.dest


def test_summary_per_group():
    records = [{"id": "a", "group": "x", "n": 4, "c": 1}, {"id": "b", "group": "y", "n": 4, "c": 4}]
    s = summarize(records, [1, 2])
    assert s["overall"]["pass@k"] == {"1": pytest.approx(0.625), "2": pytest.approx(0.75)}
    assert s["groups"]["x"]["pass@k"]["2"] == pytest.approx(0.5)


def test_store_refuses_corrupt_middle_line(tmp_path):
    ResultsStore(tmp_path, {"a": 1}).add("p1", "g", [{"correct": True}])
    with open(tmp_path / "samples.jsonl", "a") as f:
        f.write("garbage\n" + json.dumps({"id": "p2", "group": "g", "n": 1, "c": 0, "samples": []}) + "\n")
    with pytest.raises(ValueError, match="samples.jsonl:2: corrupt"):
        ResultsStore(tmp_path, {"a": 1})


def test_without_data_the_hub_error_says_what_to_do(checkpoint, tmp_path, capsys):
    try:
        import datasets  # noqa: F401
        pytest.skip("`datasets` is installed: the hub would be tried (and needs network)")
    except ImportError:
        pass
    assert run("--task", "humaneval", "--checkpoint", checkpoint, "--out", tmp_path, *FAST) == 2
    assert "pass --data PATH" in capsys.readouterr().err


def _tiny_gsm8k(root: Path, n_train: int) -> Path:
    root.mkdir()
    for split, n in (("test", 2), ("train", n_train)):
        rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(n)]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_gsm8k_files_may_be_gzipped_and_a_damaged_gzip_is_one_line(tmp_path):
    import gzip

    from ncalm.eval.reasoning import gsm8k

    plain = _tiny_gsm8k(tmp_path / "plain", n_train=3)
    packed = tmp_path / "packed"
    packed.mkdir()
    for split in ("test", "train"):
        (packed / f"{split}.jsonl.gz").write_bytes(gzip.compress((plain / f"{split}.jsonl").read_bytes()))
    assert gsm8k.load(packed) == gsm8k.load(plain)  # a directory of .jsonl.gz
    test = packed / "test.jsonl.gz"
    assert gsm8k.load(gsm8k.train_path(test), "train") == gsm8k.load(plain, "train")  # the train file beside it
    damaged = bytearray(gzip.compress(("x" * 5000 + "\n").encode() * 20))
    damaged[30] ^= 0xFF  # inside the deflate stream: zlib.error, not BadGzipFile
    (tmp_path / "damaged.jsonl.gz").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="damaged.jsonl.gz: not a complete gzip file"):
        gsm8k.load(tmp_path / "damaged.jsonl.gz")


def test_more_shots_than_train_examples_warns_once(checkpoint, tmp_path, capsys):
    data = _tiny_gsm8k(tmp_path / "gsm8k", n_train=4)
    assert run("--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "o", "--shots", "50", *FAST) == 0
    err = capsys.readouterr().err
    warning = "warning: --shots 50: the GSM8K train split has only 4 examples; prompting with 4 demonstrations"
    assert err.count(warning) == 1
    assert run("--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "o2", "--shots", "4", *FAST) == 0
    assert "warning" not in capsys.readouterr().err
    # The result records the demonstrations used, not the 50 asked for: both runs prompted alike.
    for out in ("o", "o2"):
        assert json.loads((tmp_path / out / "results.json").read_text())["config"]["shots"] == 4


def test_bbh_cot_records_its_prompts_demonstrations(checkpoint, tmp_path, capsys):
    import shutil

    data = tmp_path / "bbh"
    shutil.copytree(DATA / "bbh", data)
    common = ["--task", "bbh", "--bbh-cot", "--bbh-tasks", "navigate,snarks", "--checkpoint", checkpoint,
              "--data", data, *FAST]

    def shots(out):
        return json.loads((tmp_path / out / "results.json").read_text())["config"]["shots"]

    assert run(*common, "--out", tmp_path / "o") == 0  # the published 3-shot prompts, as --shots' default
    assert shots("o") == 3 and "warning: --shots" not in capsys.readouterr().err
    assert run(*common, "--out", tmp_path / "o0", "--shots", "0") == 0  # the prompts' 3 are used all the same
    assert shots("o0") == 3
    assert "warning: --shots 0: the --bbh-cot prompts hold 3 demonstrations; prompting with those\n" in \
        capsys.readouterr().err
    snarks = data / "cot-prompts" / "snarks.txt"
    text = snarks.read_text()
    snarks.write_text(text[:text.rindex("\n\nQ: ")])  # 2 demonstrations left: by task, then
    assert run(*common, "--out", tmp_path / "o2") == 0
    assert shots("o2") == {"navigate": 3, "snarks": 2}
    assert "warning: --shots" not in capsys.readouterr().err  # no --shots given: nothing to warn about
    assert run(*common, "--out", tmp_path / "o3", "--shots", "3") == 0 and shots("o3") == shots("o2")
    assert "warning: --shots 3: the --bbh-cot prompts hold navigate 3, snarks 2 demonstrations; prompting with " \
        "those\n" in capsys.readouterr().err


def test_negative_shots_are_refused(checkpoint, capsys):
    assert run("--checkpoint", checkpoint, "--shots", "-1") == 2
    err = capsys.readouterr().err
    assert "shots: must be >= 0, got -1" in err and err.count("\n") == 1


def test_prompts_longer_than_the_context_are_announced(checkpoint, tmp_path, capsys):
    # 8-shot GSM8K prompts are far longer than this model's 256 bytes: sampling keeps their tails.
    assert run("--task", "gsm8k", "--checkpoint", checkpoint, "--data", DATA / "gsm8k", "--out", tmp_path / "o",
               "--shots", "8", *FAST) == 0
    assert ("warning: 2 of 2 prompts are longer than the model's context 256 minus 12 new tokens; "
            "they keep their last 244 tokens") in capsys.readouterr().err


def test_default_lengths_hold_the_reference_answers_in_bytes():
    # The default tokenizer is byte-level: a length of N tokens is N bytes. The fixtures hold
    # each benchmark's longest reference answer (fixtures/README.md).
    from ncalm.eval.reasoning import bbh, gsm8k, humaneval, tasks

    tok = ByteTokenizer()
    budget = tasks.gsm8k_task(str(DATA / "gsm8k"), 0, None).default_max_new_tokens(tok)
    assert all(len((" " + gsm8k.clean_solution(e.answer)).encode()) <= budget
               for e in gsm8k.load(DATA / "gsm8k", "test"))
    budget = tasks.bbh_task(str(DATA / "bbh"), ["word_sorting"], 3, False, None).default_max_new_tokens(tok)
    assert all(len((" " + e.target).encode()) <= budget for e in bbh.load_task(DATA / "bbh" / "word_sorting.json"))
    spec = tasks.humaneval_task(str(DATA / "humaneval"), None, None, 1, None)
    assert all(len(i.reference.canonical_solution.encode()) <= spec.default_max_new_tokens(tok) for i in spec.items)
    # Chain of thought: the model continues "A: Let's think step by step." as the demonstrations do.
    budget = tasks.bbh_task(str(DATA / "bbh"), ["geometric_shapes"], 3, True, None).default_max_new_tokens(tok)
    for demos in (DATA / "bbh" / "cot-prompts").glob("*.txt"):
        for answer in bbh.load_cot_prompt(demos).split("A: Let's think step by step.")[1:]:
            assert len(answer.split("\n\nQ:")[0].encode()) <= budget, demos.name


def test_default_length_is_in_the_tokenizers_units(capsys):
    from argparse import Namespace

    from ncalm.cli.reasoning import _default_max_new
    from ncalm.eval.reasoning.tasks import TaskSpec

    spec = TaskSpec([], ("\n",), 1024, lambda item, completions: [])
    bpe = Namespace(kind="bpe")
    args = Namespace(task="gsm8k")
    assert _default_max_new(args, spec, ByteTokenizer(), 4096) == 1024
    assert _default_max_new(args, spec, bpe, 4096) == 256
    assert capsys.readouterr().err == ""
    # Half the context is the most; cutting the default below what answers need is announced.
    assert _default_max_new(args, spec, ByteTokenizer(), 256) == 128
    assert _default_max_new(args, spec, bpe, 256) == 128
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("warning: the gsm8k default generation length of 1024 bytes is cut to 128, half the "
                      "model's context of 256: longer answers are cut off (--max-new-tokens sets the length)")
    assert "of 256 tokens is cut to 128" in err[1]


def test_a_cut_default_length_warns_once_and_resumes(checkpoint, tmp_path, capsys):
    data = _tiny_gsm8k(tmp_path / "gsm8k", n_train=1)
    args = ["--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "o", "--shots", "0", "--limit", "1",
            "--n-samples", "1", "--temperature", "0", "--k", "1", "--threads", "1"]
    assert run(*args) == 0
    assert capsys.readouterr().err.count("warning: the gsm8k default generation length of 1024 bytes is cut") == 1
    assert json.loads((tmp_path / "o" / "config.json").read_text())["max_new_tokens"] == 128
    assert run(*args, "--limit", "2") == 0  # the same resolved length: the run resumes
    assert len((tmp_path / "o" / "samples.jsonl").read_text().splitlines()) == 2
    assert run(*args, "--max-new-tokens", "12") == 2  # another length: other samples, refused
    assert "max_new_tokens: " in capsys.readouterr().err


def test_no_progress_silences_the_fine_tune_and_problem_bars(checkpoint, tmp_path, capsys):
    data = _tiny_gsm8k(tmp_path / "gsm8k", n_train=2)
    saved = tmp_path / "new" / "ft.pt"  # a directory save_checkpoint makes
    args = ["--checkpoint", checkpoint, "--data", data, "--shots", "0", "--finetune", "--finetune-epochs", "1",
            "--finetune-limit", "2", "--finetune-batch-size", "2", "--save-finetuned", saved, *FAST]
    assert run(*args, "--out", tmp_path / "o", "--no-progress") == 0
    assert "%|" not in capsys.readouterr().err and saved.is_file()
    assert run(*args, "--out", tmp_path / "o2") == 0
    assert "fine-tune gsm8k: 100%|" in capsys.readouterr().err  # the bars it silenced


def test_an_unusable_save_finetuned_path_is_refused_before_fine_tuning(checkpoint, tmp_path, capsys):
    data = _tiny_gsm8k(tmp_path / "gsm8k", n_train=2)
    (tmp_path / "afile").write_text("")
    base = ["--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "o", "--shots", "0", *FAST]
    for target, message in ((tmp_path, "save_finetuned: is a directory; name the checkpoint file"),
                            (tmp_path / "afile" / "ft.pt", f"({tmp_path / 'afile'} is not a writable directory)")):
        assert run(*base, "--finetune", "--save-finetuned", target) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.err.count("\n") == 1
        assert "fine-tuned" not in captured.out and not (tmp_path / "o").exists()
    assert run(*base, "--save-finetuned", tmp_path / "ft.pt") == 2
    assert "needs --finetune" in capsys.readouterr().err


def test_a_file_of_another_format_names_the_file_and_the_expected_format(checkpoint, tmp_path, capsys):
    import gzip

    humaneval = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(humaneval, "wt") as f:
        f.write(json.dumps({"task_id": "t/0", "prompt": "def f():\n", "test": "", "entry_point": "f"}) + "\n")
    gsm8k = _tiny_gsm8k(tmp_path / "gsm8k", n_train=1) / "test.jsonl"
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_text(gsm8k.read_text())
    plain.with_suffix("").write_bytes(gzip.compress(gsm8k.read_bytes()))  # gzip under a plain name
    for task, data, said in (
            ("gsm8k", humaneval, f"{humaneval}:1: GSM8K record needs 'question' and 'answer'; GSM8K data is "
                                 "UTF-8 JSON lines"),
            ("gsm8k", plain.with_suffix(""), f"{plain.with_suffix('')}: not UTF-8 text (compressed, or another "
                                             "task's file?); GSM8K data is UTF-8 JSON lines"),
            ("humaneval", plain, f"{plain}: not a complete gzip file (Not a gzipped file"),
            ("bbh", gsm8k, f"{gsm8k}: not valid JSON (Extra data at line 2); a BBH task file is a UTF-8 JSON object")):
        assert run("--task", task, "--checkpoint", checkpoint, "--data", data, "--out", tmp_path / task, *FAST) == 2
        err = capsys.readouterr().err
        assert err.startswith("ncalm eval-reasoning: error: ") and said in err and err.count("\n") == 1


def test_gsm8k_strict_and_flexible_are_reported_apart(checkpoint, tmp_path, monkeypatch):
    from ncalm.eval.reasoning import gsm8k

    assert gsm8k.strict_answer("so 5 apples #### 7 and 9") == "7" and gsm8k.flexible_answer("#### 7 and 9") == "9"
    assert gsm8k.strict_answer("the answer is 18") is None and gsm8k.flexible_answer("the answer is 18") == "18"
    # Records as the store keeps them: strict needs ####, flexible takes the last number.
    samples = [{"correct": True, "strict": True, "flexible": False}, {"correct": True, "strict": False, "flexible": True},
               {"correct": False, "strict": False, "flexible": False}]
    s = summarize([{"id": "a", "group": "gsm8k", "n": 3, "c": 2, "samples": samples}], [1])
    assert s["scores"]["strict"]["pass@k"]["1"] == pytest.approx(1 / 3)
    assert s["scores"]["flexible"]["pass@k"]["1"] == pytest.approx(1 / 3)
    assert s["overall"]["pass@k"]["1"] == pytest.approx(2 / 3)
    out = tmp_path / "g"
    assert run("--task", "gsm8k", "--checkpoint", checkpoint, "--data", DATA / "gsm8k", "--out", out, "--shots", "1",
               "--sampling", "reference-gsm8k", "--n-samples", "2", "--limit", "1", "--k", "1",
               "--max-new-tokens", "8", "--threads", "1", "--no-progress") == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["temperature"], config["top_p"], config["n_samples"]) == (0.6, 1.0, 2)
    table = (out / "results.md").read_text()
    assert "| strict (#### N) |" in table and "| flexible (last number) |" in table
