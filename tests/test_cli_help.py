"""`ncalm --help` and every `ncalm COMMAND --help` answer fast: without importing torch."""
import subprocess
import sys

from ncalm.cli import COMMANDS

SCRIPT = """
import contextlib, io, sys
from ncalm.cli import COMMANDS, main
for name, _, _ in [("", "", "")] + COMMANDS:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([name, "--help"] if name else ["--help"])
        except SystemExit as e:
            assert e.code == 0, (name, e.code)
    assert ("usage: ncalm " + name) in out.getvalue(), (name, out.getvalue()[:200])
print("torch imported" if "torch" in sys.modules else "torch not imported")
"""


def test_help_of_every_command_loads_without_torch():
    assert len(COMMANDS) >= 7
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "torch not imported"


def test_user_errors_are_one_line_under_python_m_ncalm_cli():
    # Run as a script, cli.py is __main__: its errors must still be the commands' errors.
    done = subprocess.run([sys.executable, "-m", "ncalm.cli", "eval-reasoning", "--checkpoint", "none.pt",
                           "--k", "8", "--n-samples", "4"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "ncalm eval-reasoning: error: k: each k must be in [1, n_samples=4], got '8'"


def _actions(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        else:
            yield action


def test_every_shown_default_is_a_value_its_option_accepts():
    # --max-tokens showed "(default: 0)" and refused 0: a default a user cannot type back is a lie in --help.
    # Options made from a settings tree default to nothing (argparse.SUPPRESS) and show the tree's value
    # in their help, so the value typed back is the one the help text shows.
    import argparse
    import re

    from ncalm.cli import build_parser

    checked = 0
    for name, _, _ in COMMANDS:
        for action in _actions(build_parser(name)):
            if action.type is None or action.default is None or isinstance(action.default, bool):
                continue
            if action.default == argparse.SUPPRESS:
                shown = re.search(r"\(default: ([^)]*)\)$", action.help or "")
                if shown is None:
                    continue
                # `ncalm experiment` names each preset's: "the preset's; tiny: 1; gpu-small: unset; ...".
                said = re.sub(r" in every preset$", "", shown.group(1).removeprefix("the preset's; "))
                said = [re.sub(r"^[\w-]+: ", "", one) for one in said.split("; ")]
                values = [v for one in said if one not in ("{}", "none", "unset")
                          for v in (one.split() if action.nargs in ("+", "*") else [one])]
            else:
                values = action.default if isinstance(action.default, list) else [action.default]
            for value in values:
                action.type(str(value) if not isinstance(value, tuple) else ",".join(map(str, value)))
                checked += 1
    assert checked > 60


def test_eval_modes_define_their_metrics_in_help(capsys):
    import pytest

    from ncalm.cli import main

    for mode, definition in (("bpb", "bits/byte     total nats / (ln 2 x UTF-8 bytes"),
                             ("icl", "frame acc     fraction of frames with every cell right"),
                             ("speedup", "speedup = tokens the baseline needs to reach its final loss")):
        with pytest.raises(SystemExit):
            main(["eval", mode, "--help"])
        assert definition in capsys.readouterr().out


def test_the_set_example_of_a_command_names_one_of_its_settings():
    # experiment and sweep once showed --set optim.lr=3e-4, a key neither has.
    import pytest

    from ncalm.cli import build_parser
    from ncalm.cli.options import _check_example
    from ncalm.experiment.config import ExperimentConfig

    build_parser()  # every command's example is checked as its parser is built
    with pytest.raises(ValueError, match="ExperimentConfig has no setting 'optim'"):
        _check_example(ExperimentConfig, "optim.lr=3e-4")
    with pytest.raises(ValueError, match="OptimConfig has no setting 'lrr'"):
        _check_example(ExperimentConfig, "language.optim.lrr=3e-4")
    with pytest.raises(ValueError, match="ExperimentConfig has no setting 'RENAMED'"):  # a class attribute
        _check_example(ExperimentConfig, "RENAMED=1")
    with pytest.raises(ValueError, match="'device' is a setting, not a table"):
        _check_example(ExperimentConfig, "language.run.device.index=1")


def test_a_bool_that_takes_a_value_shows_its_default():
    # --nca.colour_wrap VALUE has no switch to say what it does, and showed no default (it is true).
    import argparse

    from ncalm.cli import build_parser

    for command, option in (("generate", "--nca.colour_wrap"), ("prepretrain", "--data.nca.colour_wrap")):
        action = next(a for a in _actions(build_parser(command)) if option in a.option_strings)
        assert action.help != argparse.SUPPRESS and action.help.endswith("(default: True)"), (command, action.help)


def test_help_names_every_choice_marks_required_settings_and_offers_only_what_applies():
    # --data KIND listed none of nca|dyck|text; tokenize's --text and --out showed "(default: )" though
    # required; pretrain offered --control, which the language stage always refuses.
    from ncalm.cli import build_parser

    for name, _, _ in COMMANDS:
        for action in _actions(build_parser(name)):
            if action.choices and action.metavar is not None:  # (without a metavar argparse shows them)
                missing = [c for c in action.choices if c is not None and c not in (action.help or "")]
                assert not missing, (name, action.option_strings, missing)
            assert "(default: )" not in (action.help or ""), (name, action.option_strings)
    options = {o: a for a in _actions(build_parser("tokenize")) for o in a.option_strings}
    assert "(required)" in options["--text"].help and "(required)" in options["--out"].help
    assert "--control" not in {o for a in _actions(build_parser("pretrain")) for o in a.option_strings}
    assert "--control" in {o for a in _actions(build_parser("prepretrain")) for o in a.option_strings}


def test_eval_reasoning_task_help_says_what_each_task_is():
    # Once only bbl was described: "benchmark to run (bbl: BIG-bench Lite ...)".
    from ncalm.cli import build_parser

    [task] = [a for a in _actions(build_parser("eval-reasoning")) if "--task" in a.option_strings]
    assert task.choices and all(f"{choice} = " in task.help for choice in task.choices)


def test_an_experiment_switch_shows_the_setting_it_flips_per_preset():
    from ncalm.cli import build_parser

    (switch,) = [a for a in _actions(build_parser("experiment")) if "--no-progress" in a.option_strings]
    # Was "(default: the preset's; True in every preset)": read as the switch being on.
    assert switch.help.endswith("(default: the preset's; progress=true in every preset)")
