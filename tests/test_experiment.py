import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomllib is 3.11+
    import tomli as tomllib

import pytest

import ncalm
from ncalm.cli import main
from ncalm.experiment.config import RESUMABLE_CHANGES, ExperimentConfig
from ncalm.experiment.presets import preset
from ncalm.lm.checkpoint import load_checkpoint
from ncalm.settings import check_same, load_toml, merge, parse_assignment, quietly, resolve

# The child process must import the same ncalm as this one (installed, or the source tree).
NCALM_ROOT = Path(ncalm.__file__).resolve().parents[1]

CONFIG = """
name = "resume-test"
seeds = [0]
threads = 1
bands = [[0.1, 1.0]]
bpb_bytes = 3000
[prepretrain]
data = {{ seq_len = 64, nca = {{ grid = 6, colors = 4 }}, text = {{ max_bytes = 60000 }} }}
optim = {{ batch_size = 4, warmup_steps = 1 }}
run = {{ tokens = 1024 }}
[language]
data = {{ seq_len = 64, text = {{ source = "{corpus}", val_percent = 20.0, max_val_bytes = 20000 }} }}
optim = {{ batch_size = 4, warmup_steps = 2 }}
run = {{ tokens = 12800, eval_every = 10, eval_batches = 2, ckpt_every = 5 }}
"""
# The same experiment in the flat layout of experiment.json and TOML files before the config tree.
OLD_CONFIG = """
name = "resume-test"
seeds = [0]
threads = 1
nca = {{ grid = 6, colors = 4 }}
bands = [[0.1, 1.0]]
text_max_bytes = 60000
[prepretrain]
tokens = 1024
seq_len = 64
batch_size = 4
warmup_steps = 1
[language]
data = "{corpus}"
val_percent = 20.0
max_val_bytes = 20000
tokens = 12800
seq_len = 64
batch_size = 4
warmup_steps = 2
eval_every = 10
eval_batches = 2
ckpt_every = 5
bpb_bytes = 3000
"""


def check_same_experiment(saved: dict, current: dict) -> None:
    """What run_experiment checks before it resumes the experiment an --out holds."""
    check_same(saved, current, RESUMABLE_CHANGES, "the experiment in out")


def _corpus(directory: Path) -> Path:
    directory.mkdir()
    words = "the of cell rule grid token frame state loss model data python code value".split()
    for i in range(30):
        text = " ".join(words[(i * 7 + j * j) % len(words)] for j in range(600))
        (directory / f"doc{i:02d}.txt").write_text(text + "\n")
    return directory


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"experiment exited ({proc.returncode}) before {path} appeared:\n"
                                 + proc.stdout.read())
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.01)


def test_a_config_file_in_the_layout_before_the_config_tree_still_loads(tmp_path):
    new, old = tmp_path / "new.toml", tmp_path / "old.toml"
    new.write_text(CONFIG.format(corpus="corpus"))
    old.write_text(OLD_CONFIG.format(corpus="corpus"))
    with quietly():
        assert resolve(ExperimentConfig, preset("tiny"), str(old)) == resolve(ExperimentConfig, preset("tiny"),
                                                                              str(new))


def test_interrupted_experiment_resumes_without_redoing_finished_work(tmp_path, capsys):
    cfg_path = tmp_path / "exp.toml"
    cfg_path.write_text(CONFIG.format(corpus=_corpus(tmp_path / "corpus")))
    out = tmp_path / "out"
    argv = ["experiment", "--config", str(cfg_path), "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NCALM_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "ncalm", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    nca = out / "seed0" / "nca_0.1-1"
    # Kill hard in the middle of the second arm's language stage, right after its first checkpoint.
    _wait_for(nca / "language" / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (nca / "language" / "done.json").exists(), "the stage finished before the kill: test is void"
    scratch_files = [out / "seed0/scratch/result.json", out / "seed0/scratch/language/metrics.jsonl",
                     out / "seed0/scratch/language/checkpoint.pt", nca / "prepretrain/checkpoint.pt"]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in scratch_files}
    assert not (out / "seed0/dyck").exists()
    step = load_checkpoint(nca / "language" / "checkpoint.pt", skip=("model", "optimizer", "rng"))["step"]

    assert main(argv) == 0
    # Said as a resume, from where (it read "start", as for an arm begun afresh).
    assert f"[seed 0] nca 0.1-1: resume (language stage from step {step})" in capsys.readouterr().out.splitlines()

    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in scratch_files} == before
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    second = [e for e in events if e["pid"] == os.getpid()]
    arm_events = {(e["event"], e["arm"]) for e in second if "arm" in e}
    assert ("skip", "scratch") in arm_events and ("start", "scratch") not in arm_events
    stage_events = {(e["event"], Path(e["stage"]).relative_to(out).as_posix()) for e in second if "stage" in e}
    assert ("skip", "seed0/nca_0.1-1/prepretrain") in stage_events
    assert ("resume", "seed0/nca_0.1-1/language") in stage_events
    assert ("start", "seed0/dyck/prepretrain") in stage_events
    assert ("start", "seed0/text/prepretrain") in stage_events

    results = json.loads((out / "results.json").read_text())
    assert [r["arm"] for r in results["runs"]] == ["scratch", "nca 0.1-1", "dyck", "text"]
    for r in results["runs"]:
        assert r["language"]["tokens"] == 12800  # the same language stage for every arm
        assert r["prepretrain"] is None if r["arm"] == "scratch" else r["prepretrain"]["tokens"] == 1024
        assert 0 < r["bpb"]["bits_per_byte"] < 10
    table = (out / "results.md").read_text()
    assert all(f"| {arm} |" in table for arm in ("scratch", "nca 0.1-1", "dyck", "text"))
    assert (out / "curves.png").stat().st_size > 10_000


def test_resume_refuses_a_different_experiment(tmp_path):
    a = ExperimentConfig().to_dict()
    b = ExperimentConfig.from_dict({"language": {"run": {"tokens": 5}}}).to_dict()
    check_same_experiment(a, ExperimentConfig(seeds=[0, 1], arms=["scratch"]).to_dict())  # more runs: fine
    with pytest.raises(ValueError, match="language"):
        check_same_experiment(a, b)


def test_resume_refusal_names_every_changed_setting_as_old_to_new():
    # It printed the first differing section as two whole dicts and said nothing of the rest.
    a = ExperimentConfig().to_dict()
    b = ExperimentConfig.from_dict({"model": "small", "prepretrain": {"data": {"nca": {"colors": 6}}},
                                    "language": {"optim": {"lr": 0.002}, "run": {"tokens": 5}},
                                    "seeds": [3], "arms": ["scratch"]}).to_dict()  # seeds and arms may change
    with pytest.raises(ValueError) as exc:
        check_same_experiment(a, b)
    assert str(exc.value) == (
        'the experiment in out was made with other settings (there -> here): language.optim.lr: 0.001 -> 0.002, '
        'language.run.tokens: 1000000 -> 5, model.size: "tiny" -> "small", prepretrain.data.nca.colors: 10 -> 6; '
        'use the same settings to resume, or another output directory')


def test_a_band_without_rules_fails_before_training(tmp_path):
    from ncalm.experiment.runner import run_experiment

    cfg = ExperimentConfig.from_dict({"prepretrain": {"data": {"nca": {"grid": 4, "colors": 2}}},
                                      "bands": [[0.0, 1.0], [1.9, 2.0]]})
    with pytest.raises(ValueError, match=r"^bands: \[1.9, 2.0\]: no rule of this NCA config scores inside \(1.9, 2\)"):
        run_experiment(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "seed0").exists()


@pytest.mark.parametrize("bands", ["0.22,1 0.2200001,1", "0.5,1 0.5,1"])
def test_bands_with_one_name_are_refused(tmp_path, capsys, bands):
    # The second band's arm had the first one's name and folder: skipped as already done.
    from ncalm.settings import SettingError

    pairs = [[float(x) for x in b.split(",")] for b in bands.split()]
    with pytest.raises(SettingError, match=r"^bands: two are named"):
        ExperimentConfig.from_dict({**preset("tiny"), "bands": pairs})
    out = tmp_path / "out"
    missing = tmp_path / "none"  # no corpus: without the refusal, no training either
    assert main(["experiment", "--preset", "tiny", "--arms", "nca", "--bands", *bands.split(), "--out", str(out),
                 "--set", f"language.data.text.source={missing}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "bands: two are named " in err and "give distinct bands" in err
    assert not out.exists()


def test_band_none_is_an_unfiltered_nca_arm(tmp_path):
    # --bands' message offers "or none" (NCAConfig.band None: every rule); it ended in "bands: must be a list
    # of lists of numbers, got [None]".
    from ncalm.cli.main import build_parser
    from ncalm.cli.options import tree_config
    from ncalm.experiment.arms import arms_of, first_stage
    from ncalm.settings import SettingError

    args = build_parser().parse_args(["experiment", "--preset", "tiny", "--arms", "scratch", "nca", "nca-shuffled",
                                      "--bands", "0.22,1", "none"])
    cfg = tree_config(ExperimentConfig, args, preset("tiny"))
    assert cfg.bands == [[0.22, 1.0], None]
    toml = tomllib.loads('arms = ["scratch", "nca", "nca-shuffled"]\nbands = [[0.22, 1.0], "none"]')
    assert ExperimentConfig.from_dict({**preset("tiny"), **toml}) == cfg
    arms = arms_of(cfg)
    assert [a.name for a in arms] == ["scratch", "nca 0.22-1", "nca unfiltered", "nca-shuffled 0.22-1",
                                      "nca-shuffled unfiltered"]
    # Not the stage's default band (0.5, 1.0): no filter at all.
    assert [first_stage(cfg, a, 0, tmp_path, "t").data.nca.band for a in arms[1:]] == [(0.22, 1.0), None] * 2
    with pytest.raises(SettingError, match="bands: two are named unfiltered"):
        ExperimentConfig.from_dict({**preset("tiny"), "bands": [None, None]})


def test_integer_settings_take_counts_and_list_settings_one_item():
    # As the command-line flags do: --set language.tokens=100k was refused.
    sets = ["language.run.tokens=100k", "prepretrain.run.tokens=1e6", "language.data.text.max_bytes=1.5M",
            "bpb_bytes=2B", "seeds=[1]", "arms=scratch", "bands=[0.3,0.5]"]
    d = preset("tiny")
    for text in sets:
        d = merge(d, parse_assignment(text))
    cfg = ExperimentConfig.from_dict(d)
    assert (cfg.language.run.tokens, cfg.prepretrain.run.tokens, cfg.language.data.text.max_bytes,
            cfg.bpb_bytes) == (100_000, 1_000_000, 1_500_000, 2_000_000_000)
    assert (cfg.seeds, cfg.arms, cfg.bands) == ([1], ["scratch"], [[0.3, 0.5]])
    assert type(cfg.prepretrain.run.tokens) is int and type(cfg.to_dict()["language"]["run"]["tokens"]) is int


def test_a_config_file_takes_counts_too(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('seeds = [2]\n[language.run]\ntokens = "100k"\neval_every = 1e1\n'
                    '[language.data.text]\nmax_bytes = "2e6"\n')
    cfg = ExperimentConfig.from_dict(merge(preset("tiny"), load_toml(path)))
    assert (cfg.seeds, cfg.language.run.tokens, cfg.language.run.eval_every, cfg.language.data.text.max_bytes) == (
        [2], 100_000, 10, 2_000_000)


def test_a_bad_seed_is_named_as_the_seeds_setting(tmp_path, capsys):
    # It surfaced from the NCA band check as "bands: [0.36, 1.0]: seed=-1 must be ...".
    assert main(["experiment", "--out", str(tmp_path / "out"), "--seeds", "0", "-1", "--dry-run"]) == 2
    assert capsys.readouterr().err == (
        "ncalm experiment: error: seeds: each seed must be an integer in [0, 2**64), got [0, -1]\n")


def test_help_states_every_option_default(capsys):
    # --seeds, --arms, --bands, --device, --precision and --threads said nothing: their defaults are the preset's.
    from ncalm.cli import build_parser

    sub = next(a for a in build_parser("experiment")._actions if a.dest == "command").choices["experiment"]
    for action in sub._actions:
        if action.dest not in ("help", "dry_run") and action.help != argparse.SUPPRESS:  # --progress: hidden alias
            assert "default" in sub.formatter_class("ncalm")._get_help_string(action), action.dest
    seeds = next(a for a in sub._actions if a.dest == "@seeds").help
    assert "tiny: 0 1 2; gpu-small: 0 1 2; paper: 0" in seeds


def test_settings_and_overrides():
    assert parse_assignment("language.tokens=2e6") == {"language": {"tokens": 2_000_000}}
    assert parse_assignment("text=hf:wikitext") == {"text": "hf:wikitext"}
    d = merge({"nca": {"colors": 6}, "language": {"lr": 1.0, "tokens": 3}}, {"nca": {"grid": 8}, "language": {"lr": 2.0}})
    assert d == {"nca": {"colors": 6, "grid": 8}, "language": {"lr": 2.0, "tokens": 3}}
    with pytest.raises(ValueError, match=r"language\.tokenz: unknown setting; known: data, model, optim, run"):
        ExperimentConfig.from_dict({"language": {"tokenz": 1}})
    with pytest.raises(ValueError, match="arms"):
        ExperimentConfig(arms=["nca", "gpt"])
    with pytest.raises(ValueError, match="bands"):
        ExperimentConfig(bands=[[0.6, 0.5]])


def rec(arm, seed, curve):
    """A run's result record as run_arm writes it, without the training."""
    return {"arm": arm, "kind": arm, "band": None, "seed": seed, "final_val_loss": curve[-1][1],
            "perplexity": 1.0, "bpb": None, "train_seconds": 1.0, "wall_seconds": 2.0,
            "prepretrain": None if arm == "scratch" else {"tokens": 50},
            "language": {"tokens": 300, "val_curve": curve}}


def test_a_finite_but_huge_loss_is_a_result_not_an_overflow(tmp_path, monkeypatch):
    from ncalm.experiment import runner
    from ncalm.experiment.arms import arms_of

    cfg = ExperimentConfig.from_dict({**preset("tiny"), "bpb_bytes": 0, "arms": ["scratch"]})
    lang = {"tokens": 8192, "val_loss": 2885.69, "elapsed_s": 1.0, "wall_s": 1.5, "n_params": 1,
            "val_curve": [[0, 5.0], [8192, 2885.69]], "checkpoint": "unused"}  # lr 30, grad_clip 0
    monkeypatch.setattr(runner, "run_stage", lambda train_cfg, log: lang)
    (tmp_path / "seed0" / "scratch").mkdir(parents=True)  # run_stage would have made it
    record = runner.run_arm(cfg, arms_of(cfg)[0], 0, tmp_path, lambda *a, **k: None)  # was OverflowError
    assert record["perplexity"] == math.inf and (tmp_path / "seed0" / "scratch" / runner.RESULT).exists()


def test_summary_pairs_arms_with_scratch_by_seed():
    from ncalm.experiment.report import markdown_table, summarize

    records = [rec("scratch", 0, [(100, 4.0), (200, 3.0), (300, 2.0)]),
               rec("scratch", 1, [(100, 4.0), (200, 3.0), (300, 3.0)]),
               rec("nca", 0, [(100, 3.0), (200, 2.0), (300, 1.5)]),   # reaches 2.0 at 200: 1.5x, +25 %
               rec("nca", 1, [(100, 4.0), (200, 3.5), (300, 3.3)])]   # never reaches 3.0: -10 %
    s = summarize(records)
    assert s["nca"]["improvement_pct"]["mean"] == pytest.approx((25.0 - 10.0) / 2)
    assert s["nca"]["speedup"]["mean"] == pytest.approx(1.5) and s["nca"]["speedup"]["n"] == 1
    assert s["nca"]["speedup_not_reached"] == 1
    assert s["scratch"]["final_val_loss"]["mean"] == 2.5
    assert s["nca"]["loss_change_pct"]["mean"] == pytest.approx((-25.0 + 10.0) / 2)
    assert s["nca"]["perplexity_change_pct"]["min"] == pytest.approx((math.exp(1.5 - 2.0) - 1) * 100)
    # Never the survivors' mean: each seed, the one that never reached scratch's final loss with its bound
    # (scratch's 200 tokens / the arm's 300); compute-adjusted adds the first stage's 50 tokens.
    table = markdown_table(s)
    assert "| 1.50x, not reached (< 0.67x) | 1.20x, not reached (< 0.57x) |" in table
    assert "| -7.50 % [" in table


def test_seeds_column_says_how_many_are_paired_with_scratch():
    from ncalm.experiment.report import markdown_table, summarize

    curve = [(100, 4.0), (200, 3.0)]
    records = [rec("scratch", 0, curve), rec("scratch", 1, curve),
               *(rec("nca", seed, [(100, 3.5), (200, 2.5 + seed / 10)]) for seed in (0, 1, 2))]
    s = summarize(records)
    assert s["nca"]["paired_seeds"] == [0, 1] and s["nca"]["loss_change_pct"]["n"] == 2
    table = markdown_table(s)
    assert "| nca | 3 (2 paired) | 50 |" in table and "| scratch | 2 | 0 |" in table  # was "| nca | 3 |"
    assert "| nca | 2 | 50 |" in markdown_table(summarize(records[:4]))  # every seed paired: the count alone


def test_a_diverged_arm_is_reported_not_fatal(tmp_path):
    import json

    from ncalm.experiment.report import markdown_table, summarize, write_report

    nan = float("nan")
    records = [rec("scratch", 0, [(100, 4.0), (200, 3.0)]), rec("scratch", 1, [(100, 4.0), (200, 3.0)]),
               {**rec("nca", 0, [(100, 3.0), (200, nan)]), "perplexity": nan},
               rec("nca", 1, [(100, 3.5), (200, 2.7)])]
    s = summarize(records)  # raised "point 1 = (200.0, nan) is not finite": no table for any arm
    assert s["nca"]["speedup_diverged"] == 1 and s["nca"]["speedup"]["n"] == 1  # seed 1: 200 / 162.5 tokens
    assert s["nca"]["improvement_pct"] == {"mean": pytest.approx(10.0), "std": 0.0, "min": pytest.approx(10.0),
                                           "max": pytest.approx(10.0), "n": 1, "low": None, "high": None,
                                           "diverged": 1}
    table = markdown_table(s)
    assert "| nca | 2 | 50 | - | 300 | 2.7000 (1 diverged) | 14.880 (1 diverged) | - " in table
    assert "| -10.00 % (1 diverged) | - | diverged, 1.23x | diverged, 0.94x |" in table
    only = markdown_table(summarize(records[:3]))  # every seed of the arm diverged
    assert "| nca | 1 | 50 | - | 300 | diverged | diverged | - | diverged | diverged | - | diverged | diverged |" in only

    def strict(constant):
        raise AssertionError(f"{constant} in results.json")

    write_report(records, tmp_path, {"name": "t"})
    saved = json.loads((tmp_path / "results.json").read_text(), parse_constant=strict)
    assert saved["runs"][2]["final_val_loss"] is None and saved["runs"][2]["language"]["val_curve"][1] == [200, None]


def test_every_arm_gets_the_same_language_stage_and_first_stage_budget(tmp_path):
    from ncalm.experiment.arms import arms_of, first_stage, language_stage
    from ncalm.experiment.presets import PRESETS

    for name, preset in PRESETS.items():
        cfg = ExperimentConfig.from_dict({**preset, "bands": [[0.5, 1.0], [0.3, 0.5]]})
        arms = arms_of(cfg)
        assert [a.kind for a in arms] == ["scratch", "nca", "nca", "dyck", "text"], name
        lang = [language_stage(cfg, 7, tmp_path / "lang", None if a.kind == "scratch" else "ck.pt").to_dict()
                for a in arms]
        for d in lang:
            d["model"]["init"] = None
        assert all(d == lang[0] for d in lang[1:]), name
        firsts = [first_stage(cfg, a, 7, tmp_path / "first", "text-spec").to_dict() for a in arms[1:]]
        for a, d in zip(arms[1:], firsts):
            run = dict(d["run"])
            if a.kind == "text":  # its own budget: text_budget x the others' (the reference's 10x in `paper`)
                assert run["tokens"] == round(firsts[0]["run"]["tokens"] * cfg.text_budget)
                run["tokens"] = firsts[0]["run"]["tokens"]
            assert (run, d["optim"], d["model"]) == (firsts[0]["run"], firsts[0]["optim"], firsts[0]["model"])
            assert d["data"]["seq_len"] == cfg.prepretrain.data.seq_len
        assert [d["data"]["nca"]["band"] for d in firsts[:2]] == [[0.5, 1.0], [0.3, 0.5]]


def test_report_of_speedups_that_cannot_be_measured(tmp_path):
    from ncalm.experiment.report import write_report

    scratch = [(0, 5.0), (100, 4.0), (200, 3.0)]
    records = [rec("scratch", 0, scratch), rec("scratch", 1, scratch),
               rec("text", 0, [(0, 2.9), (100, 2.5), (200, 2.0)]),   # under 3.0 before training
               rec("text", 1, [(0, 4.0), (100, 3.0), (200, 2.5)]),   # reaches it at 100: 2x
               rec("dyck", 0, [(0, 2.8), (200, 2.5)]),
               rec("nca", 0, [(200, 2.0)]), rec("nca", 1, [(200, 2.5)])]  # eval_every=0: one point
    summary = write_report(records, tmp_path, {"name": "t"})  # no ZeroDivisionError
    assert summary["text"]["speedup"]["mean"] == pytest.approx(2.0) and summary["text"]["speedup_at_start"] == 1
    assert summary["dyck"]["speedup"] is None and summary["dyck"]["speedup_at_start"] == 1
    assert summary["nca"]["speedup"] is None and summary["nca"]["speedup_not_measurable"] == 2
    table = (tmp_path / "results.md").read_text()
    # text: seed 0 is under scratch's final loss at 0 tokens (unbounded); with its first stage's 50: >= 200 / 50
    assert "| at start, 2.00x | at start (>= 4.00x), 1.33x |" in table
    assert "| -16.67 % | - | at start | at start (>= 4.00x) |" in table
    assert "| -25.00 % [-130.89, +80.89] | 0.205 | n/a | n/a |" in table
    assert json.loads((tmp_path / "results.json").read_text())["summary"]["nca"]["speedup"] is None


def test_rerun_with_fewer_arms_reports_every_finished_arm(tmp_path, capsys):
    out = tmp_path / "out"
    scratch = rec("scratch", 0, [(0, 5.0), (100, 4.0), (200, 3.0)])
    dyck = rec("dyck", 0, [(0, 5.0), (100, 3.0), (200, 2.7)])
    for r in (scratch, dyck):  # finished earlier: this invocation only reports them
        (out / "seed0" / r["arm"]).mkdir(parents=True)
        (out / "seed0" / r["arm"] / "result.json").write_text(json.dumps(r))

    assert main(["experiment", "--out", str(out), "--arms", "dyck", "--seeds", "0", "--no-progress"]) == 0

    results = json.loads((out / "results.json").read_text())
    assert [r["arm"] for r in results["runs"]] == ["scratch", "dyck"]
    assert results["summary"]["dyck"]["improvement_pct"]["mean"] == pytest.approx(10.0)
    table = (out / "results.md").read_text()
    assert "| scratch |" in table and "| -10.00 % | - | 2.00x | 1.33x |" in table


@pytest.mark.parametrize("setting", ["model=huge", "prepretrain.optim.lr=0", "language.data.text.tokenizer=wordpiece",
                                     "device=gpu", "prepretrain.data.nca.foo=1", "language.data=/nonexistent/corpus"])
def test_a_bad_setting_writes_nothing_and_leaves_the_directory_usable(tmp_path, capsys, setting):
    out = tmp_path / "out"
    argv = ["experiment", "--out", str(out), "--arms", "scratch", "nca", "--no-progress", "--set", setting]
    assert main([*argv, "--dry-run"]) == 2
    assert main(argv) == 2
    assert not out.exists()
    key = setting.split("=")[0].split(".")[-1]
    assert all("ncalm experiment: error: " in line and key in line
               for line in capsys.readouterr().err.splitlines())


@pytest.mark.parametrize("setting, message", [
    ("language=3", "language: must be a table of settings, got 3"),
    ("language.run.tokens=abc",
     "language.run.tokens: must be an integer or a count such as 100k, 1.5M, 2B or 1e6, got 'abc'"),
    ("language.run.tokens=1.5",
     "language.run.tokens: must be an integer or a count such as 100k, 1.5M, 2B or 1e6, got 1.5"),
    ("seeds=true", "seeds: must be a list of integers, got True"),
    ("seeds=3", "seeds: must be a list of integers, got 3"),
    ("seeds=0,1", "seeds: must be a list of integers, got '0,1'"),
    ("bands=0.5", "bands: must be a list of lists of numbers, got 0.5"),
    ("bands=0.5,oops", "bands: band must be LOWER,UPPER (e.g. 0.5,1.0) or none, got '0.5,oops'"),
    ("prepretrain.optim.lr=true", "prepretrain.optim.lr: must be a number, got True"),
    ("prepretrain.data.nca.foo=1", "prepretrain.data.nca.foo: unknown setting; known: band, burn_in,"),
])
def test_a_setting_of_the_wrong_type_is_a_one_line_error(tmp_path, capsys, setting, message):
    assert main(["experiment", "--out", str(tmp_path / "out"), "--arms", "nca", "--set", setting, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ncalm experiment: error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("settings, said", [
    (["language.data.text.tokenizer=bpe", "language.data.text.bpe_vocab=10"],
     "language.data.text.bpe_vocab: must be >= 258, got 10"),
    (["prepretrain.data.pool_size=-3"], "prepretrain.data.pool_size: must be >= 0"),
    (["prepretrain.data.epoch_sequences=-1"], "prepretrain.data.epoch_sequences: must be >= 0, got -1"),
    (["prepretrain.data.pool_size=100", "prepretrain.data.epoch_sequences=50"],
     "prepretrain.data.epoch_sequences: must be >= pool_size=100, got 50"),
    (["prepretrain.data.dyck.k=0"], "prepretrain.data.dyck.k: must be >= 1, got 0"),
    (["prepretrain.data.dyck.depth=0"], "prepretrain.data.dyck.depth: must be >= 1, got 0"),
    (["language.data.text.val_percent=0"], "language.data.text.val_percent: must be in (0, 100), got 0.0"),
    (["language.data.text.val_percent=150"], "language.data.text.val_percent: must be in (0, 100), got 150.0"),
    (["prepretrain.data.text.val_percent=0"], "prepretrain.data.text.val_percent: must be in (0, 100), got 0.0"),
    (["prepretrain.data.text.val_percent=150"],
     "prepretrain.data.text.val_percent: must be in (0, 100), got 150.0"),
    (["model.overrides.vocab_size=300"],
     "model.overrides: vocab_size cannot be set: the vocabulary comes from the data"),
])
def test_data_settings_a_stage_would_reject_are_refused_before_anything_is_written(tmp_path, capsys, settings, said):
    # Also for arms not run now: --arms may add them on a resume, when experiment.json pins the value.
    out = tmp_path / "out"
    argv = ["experiment", "--out", str(out), "--arms", "scratch", "--no-progress",
            *[arg for s in settings for arg in ("--set", s)]]
    assert main([*argv, "--dry-run"]) == 2
    assert main(argv) == 2
    assert not out.exists()
    assert all(line.startswith("ncalm experiment: error: ") and said in line
               for line in capsys.readouterr().err.splitlines())


def test_precision_is_resolved_once_and_kept_for_every_arm_and_resume(tmp_path, capsys):
    import torch

    from ncalm.experiment.arms import arms_of, first_stage, language_stage
    from ncalm.experiment.runner import pin_precision

    out = tmp_path / "out"
    argv = ["experiment", "--out", str(out), "--arms", "scratch", "dyck", "--dry-run"]
    assert main(argv) == 0
    here = json.loads(capsys.readouterr().out)
    assert here["precision"] == ("bf16" if torch.cuda.is_available() else "fp32")  # auto, resolved for this device
    # An experiment started on a GPU and resumed here keeps its bf16, whatever device runs the rest.
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({**here, "precision": "bf16"}))
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "bf16"
    cfg = pin_precision(ExperimentConfig(arms=["scratch", "dyck"]), out)
    assert language_stage(cfg, 0, tmp_path, None).run.precision == "bf16"
    assert first_stage(cfg, arms_of(cfg)[1], 0, tmp_path, "stdlib").run.precision == "bf16"
    with pytest.raises(ValueError, match='precision: "bf16" -> "fp32"'):  # an explicit other precision
        check_same_experiment({**here, "precision": "bf16"}, {**here, "precision": "fp32"})


def test_an_experiment_from_before_precision_was_pinned_resumes(tmp_path):
    from ncalm.experiment.runner import pin_precision, saved_experiment

    cfg = ExperimentConfig(arms=["scratch"])
    (tmp_path / "experiment.json").write_text(json.dumps({k: v for k, v in cfg.to_dict().items() if k != "precision"}))
    pinned = pin_precision(cfg, tmp_path)
    check_same_experiment(saved_experiment(tmp_path, cfg.device), pinned.to_dict())  # its stages ran at auto: this


def test_experiment_under_torchrun_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    # Each rank used to write the shared files, and rank 1 (no validation loss) crashed.
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "out"
    assert main(["experiment", "--out", str(out), "--arms", "scratch", "--no-progress"]) == 2
    assert not out.exists()
    assert "not under torchrun (WORLD_SIZE=2)" in capsys.readouterr().err


def test_control_arms_are_the_nca_stage_with_its_control(tmp_path):
    from ncalm.experiment.arms import arms_of, first_stage
    from ncalm.experiment.config import NCA_ARMS

    cfg = ExperimentConfig.from_dict({**preset("tiny"), "arms": ["scratch", *NCA_ARMS],
                                      "prepretrain": {**preset("tiny")["prepretrain"],
                                                      "data": {"seq_len": 256, "pool_size": 64}}})
    arms = arms_of(cfg)
    assert [a.name for a in arms] == ["scratch", "nca 0.22-1", "nca-shuffled 0.22-1", "nca-shuffled-tokens 0.22-1",
                                      "random-unigram 0.22-1", "nca-fixed-rules 0.22-1"]
    firsts = [first_stage(cfg, a, 7, tmp_path, "unused").to_dict() for a in arms[1:]]
    assert [d["data"]["control"] for d in firsts] == list(NCA_ARMS.values())
    for d in firsts:  # otherwise the NCA arm's stage: same data, budget and schedule
        d["data"]["control"] = "none"
        assert d == firsts[0]
    with pytest.raises(ValueError, match="^prepretrain.data.pool_size: the nca-fixed-rules arm"):
        ExperimentConfig(arms=["nca-fixed-rules"])


def test_runs_on_an_edited_corpus_are_not_reported_as_one_experiment(tmp_path):
    # A corpus edited between invocations trained seed 1 on other text than seed 0, and the report paired them.
    from ncalm.experiment.runner import _check_data

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("first text " * 50)
    cfg = ExperimentConfig.from_dict({"language": {"data": {"text": {"source": str(corpus)}}}})
    out = tmp_path / "out"
    out.mkdir()
    _check_data(cfg, out)
    os.utime(corpus / "a.txt", (0, 0))  # touched or copied: the same data
    _check_data(cfg, out)
    (corpus / "a.txt").write_text("other text " * 60)
    with pytest.raises(ValueError, match=r"^language.data.text.source: the corpus changed since the runs in .* were "
                                         r"trained on it"):
        _check_data(cfg, out)


def test_only_the_text_arm_reads_pydoc_as_built_in_prose():
    # The language stage's "pydoc" was let through the check before the run, and failed after the first stages.
    from ncalm.experiment.runner import check_runnable

    with pytest.raises(FileNotFoundError, match="pydoc"):
        check_runnable(ExperimentConfig.from_dict({"language": {"data": {"text": {"source": "pydoc"}}}}))
