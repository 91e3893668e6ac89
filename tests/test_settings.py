"""The settings machinery: one declaration per setting, every layer merged key by key, errors by dotted key."""
import copy
import pickle

import pytest

from ncalm.cli import main
from ncalm.experiment.config import ExperimentConfig
from ncalm.experiment.sweep import SweepConfig
from ncalm.settings import SettingError, parse_assignment, quietly, resolve
from ncalm.train.config import StageConfig


def stage(*assignments: str, base: dict | None = None) -> StageConfig:
    return resolve(StageConfig, base or {}, None, list(assignments))


def test_an_old_and_a_new_name_of_one_setting_are_refused_together():
    with pytest.raises(SettingError, match="max_tokens: is the old name of 'run.tokens', which is given too"):
        StageConfig.from_dict({"max_tokens": 1000, "run": {"tokens": 2000}})
    assert StageConfig.from_dict({"max_tokens": 1000}).run.tokens == 1000


def test_none_unsets_an_optional_setting_and_a_fields_own_parser_reads_set_values():
    assert stage("run.threads=3", "run.threads=none").run.threads is None
    assert stage("data.nca.band=0.3,0.4").data.nca.band == (0.3, 0.4)
    assert stage("data.nca.band=none").data.nca.band is None
    assert stage("run.out_dir=2024-01-01").run.out_dir == "2024-01-01"  # TOML would read a date
    assert stage("optim.lr=.001").optim.lr == 0.001
    with pytest.raises(SettingError, match=r"run.threads: must be an integer .*got 'lots'"):
        stage("run.threads=lots")
    # A list of bands given one band, as its flag reads it, is that one band (it was read as two numbers).
    assert resolve(ExperimentConfig, {}, None, ["bands=0.3,0.4"]).bands == [[0.3, 0.4]]


def test_a_plain_value_for_a_stages_data_is_a_text_corpus():
    cfg = stage("data=corpus/")
    assert (cfg.data.kind, cfg.data.text.source) == ("text", "corpus/")
    assert parse_assignment("data=corpus/") == {"data": "corpus/"}


def test_trees_copy_and_pickle():
    # DataLoader workers started with spawn pickle the data config; the core's checked object is rebuilt.
    cfg = stage("data.nca.colors=4")
    assert copy.deepcopy(cfg) == cfg
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and back.data.nca.core.vocab == 4**4 + 2


@pytest.mark.parametrize("assignment, message", [
    ("data.nca.colors=3e9", "data.nca.colors: 3000000000 is out of range (the core takes 32-bit integers)"),
    ("data.seq_len=1e8", "data.seq_len: 100000000 is out of range"),
    # The core's checks, keyed by the setting they name (they were "data.nca: colors=1 ...").
    ("data.nca.colors=1", "data.nca.colors: 1 is out of range: allowed 2 <= colors <= 256"),
    ("data.nca.band=[1,0.5]", "data.nca.band: (1, 0.5) is invalid: need 0 <= lower < upper <= 2"),
    ("lr=1e-3", "lr: unknown setting; known: data, model, optim, run; did you mean optim.lr?"),
    ("model.overrides={n_layer=0}", "model.overrides.n_layer: must be >= 1, got 0"),
    ("model.size=huge", "model.size: must be one of tiny, mini, small, base, large, paper or unset, got 'huge'"),
    # These trained to NaN (inf) or ended in a torch traceback (a negative std) before they were checked.
    ("optim.lr=inf", "optim.lr: must be finite, got inf"),
    ("optim.weight_decay=inf", "optim.weight_decay: must be finite, got inf"),
    ("model.overrides={init_std=-1}", "model.overrides.init_std: must be >= 0, got -1.0"),
    ("model.overrides={rope_theta=0}", "model.overrides.rope_theta: must be > 0, got 0.0"),
])
def test_errors_name_the_setting(assignment, message):
    with pytest.raises(SettingError) as err:
        stage(assignment)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("assignment, key", [
    ("prepretrain.data.seed=5", "prepretrain.data.seed"),
    ("language.data.seed=7", "language.data.seed"),
    ("prepretrain.data.nca.band=[0.3,0.4]", "prepretrain.data.nca.band"),
    ("language.run.stop_at=3", "language.run.stop_at"),
    ("prepretrain.data.kind=nca", "prepretrain.data.kind"),
])
def test_an_experiment_refuses_template_settings_that_each_arm_sets(assignment, key):
    with pytest.raises(SettingError, match=f"^{key}: "):
        resolve(ExperimentConfig, {}, None, [assignment])


def test_the_first_stage_keeps_the_templates_tokenizer():
    from pathlib import Path

    from ncalm.experiment.arms import arms_of, first_stage

    cfg = resolve(ExperimentConfig, {}, None, ["prepretrain.data.text.tokenizer=bpe", "arms=text"])
    [arm] = arms_of(cfg)
    assert first_stage(cfg, arm, 0, Path("unused"), "corpus/").data.text.tokenizer == "bpe"


def test_an_old_experiment_stage_with_steps_0_and_a_budget_loads():
    with quietly():
        cfg = StageConfig.from_dict({"steps": 0, "max_tokens": 4096, "data": {"kind": "dyck", "seq_len": 32}})
    assert (cfg.run.steps, cfg.total_steps()) == (0, 16)  # 4096 tokens, 8 x 32 a step
    with pytest.raises(SettingError, match="run.steps: must be >= 1 unless tokens is set, got 0"):
        stage("run.steps=0")


def test_a_resume_may_change_the_tables_of_other_data_kinds(tmp_path, capsys):
    args = ["prepretrain", "--data", "dyck", "--steps", "2", "--seq-len", "32", "--batch-size", "1", "--warmup", "1",
            "--eval-every", "0", "--val-sequences", "1", "--threads", "1", "--no-progress", "--out", str(tmp_path)]
    assert main([*args, "--stop-at", "1"]) == 0
    assert main([*args, "--resume", "--colors", "4", "--text", "elsewhere/"]) == 0  # NCA and text tables: unused
    assert main([*args, "--resume", "--dyck-k", "3"]) == 2
    assert "config.data.dyck.k: 4 -> 3" in capsys.readouterr().err


def test_switches_and_their_dotted_form():
    assert stage().run.progress is True
    from ncalm.cli import build_parser
    from ncalm.settings import flag_values

    args = build_parser("prepretrain").parse_args(["prepretrain", "--no-progress", "--data.nca.colour_wrap", "false"])
    assert flag_values(args) == {"run": {"progress": False}, "data": {"nca": {"colour_wrap": False}}}


def test_a_dashed_trees_fields_are_options_named_after_them():
    from ncalm.cli import build_parser
    from ncalm.settings import flag_values

    args = build_parser("eval-reasoning").parse_args(["eval-reasoning", "--n-samples", "4", "--bbh-cot",
                                                      "--no-progress"])
    assert flag_values(args) == {"n_samples": 4, "bbh_cot": True, "progress": False}
    with pytest.raises(SystemExit):  # the dashed name only, as a switch: no --bbh_cot, no --bbh-cot VALUE
        build_parser("eval-reasoning").parse_args(["eval-reasoning", "--bbh_cot"])


def test_a_rename_inside_a_table_is_named_by_its_whole_dotted_key(capsys, monkeypatch):
    import ncalm.settings as settings

    monkeypatch.setattr(settings, "_warned", set())
    ExperimentConfig.from_dict({"language": {"max_tokens": 3}, "prepretrain": {"data": {"dyck_k": 3}}})
    err = capsys.readouterr().err
    assert "'language.max_tokens' is now 'language.run.tokens'" in err
    assert "'prepretrain.data.dyck_k' is now 'prepretrain.data.dyck.k'" in err
    with pytest.raises(SettingError, match=r"^data.dyck_k: is the old name of 'data.dyck.k', which is given too"):
        StageConfig.from_dict({"data": {"dyck_k": 3, "dyck": {"k": 4}}})


def test_a_setting_checked_where_it_is_used_is_named_by_its_full_key():
    from ncalm.settings import within

    with pytest.raises(SettingError, match=r"^data\.text\.tokenizer: no such file$"):
        with within("data"), within("text"):
            raise SettingError("tokenizer", "no such file")
    with pytest.raises(ValueError, match=r"^other$"):  # only settings' errors are renamed
        with within("data"):
            raise ValueError("other")


def test_a_setting_shared_by_two_commands_is_declared_once():
    """Two fields with one name and one help text are one setting: all but one are declared with
    ``same_as``, not restated beside it. (A restated field with help of its own is not caught.)"""
    import dataclasses
    import importlib
    import inspect
    import pkgutil

    import ncalm
    from ncalm.settings import Settings

    for module in pkgutil.walk_packages(ncalm.__path__, "ncalm."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    classes, seen = Settings.__subclasses__(), {}
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        for f in dataclasses.fields(cls) if cls.__module__.startswith("ncalm.") else ():
            inherited = f.name not in inspect.get_annotations(cls)
            if not inherited and "same_as" not in f.metadata:  # the one declaration of this name and help
                first = seen.setdefault((f.name, f.metadata.get("help")), cls.__qualname__)
                assert first == cls.__qualname__, \
                    f"{cls.__qualname__}.{f.name} restates {first}.{f.name}: declare it with same_as"


def test_a_plain_value_where_a_table_goes_is_named_whatever_comes_after_it():
    # A later layer's table (here the flags' optim.warmup_steps) once replaced it silently.
    with pytest.raises(SettingError, match="^optim: must be a table of settings, got 3"):
        resolve(StageConfig, {}, None, ["optim=3"], {"optim": {"warmup_steps": 1}})
    with pytest.raises(SettingError, match="^run.out_dir: must be a string"):  # and a table for a plain value
        resolve(StageConfig, {}, None, ["run.out_dir=x", "run.out_dir={y=1}"])


def test_a_dotted_key_in_a_table_is_the_nested_key_and_the_same_leaf_given_twice_is_refused(tmp_path):
    # TOML's quoted key, as a sweep's [axes] writes one: it was "unknown setting" before.
    path = tmp_path / "q.toml"
    path.write_text('"language.run.tokens" = 30_000\n[language]\n"optim.lr" = 0.5\n')
    cfg = resolve(ExperimentConfig, {}, str(path))
    assert (cfg.language.run.tokens, cfg.language.optim.lr) == (30_000, 0.5)
    assert StageConfig.from_dict({"run.tokens": 7, "run": {"steps": 3}}).run.tokens == 7
    with pytest.raises(SettingError, match="^run.tokens: is given twice"):
        StageConfig.from_dict({"run.tokens": 7, "run": {"tokens": 8}})
    # Beside a table given whole by its shorthand, a dotted key is another setting, as with two --set (was refused).
    cfg = ExperimentConfig.from_dict({"language.data": "c.txt", "language.data.text.tokenizer": "gpt2"})
    assert (cfg.language.data.text.source, cfg.language.data.text.tokenizer) == ("c.txt", "gpt2")
    assert StageConfig.from_dict({"model": "small", "model.init": "x"}).model.init == "x"
    for d in ({"run.tokens": 5, "run.tokens.x": 1}, {"run.tokens.x": 1, "run": {"tokens": 5}}):  # either order
        with pytest.raises(SettingError, match=r"^run.tokens: must be an integer .*got \{'x': 1\}"):
            StageConfig.from_dict(d)
    with pytest.raises(SettingError, match="^language.data.text.source: is given twice"):  # the table given whole
        ExperimentConfig.from_dict({"language.data.text.source": "a", "language": {"data": "b"}})
    sweep = SweepConfig.from_dict({"experiment": {"language.run.tokens": 5}, "axes": {"bands": [[[0.5, 1.0]]]}})
    assert sweep.experiment == {"language": {"run": {"tokens": 5}}}  # a sweep's [experiment] table too
