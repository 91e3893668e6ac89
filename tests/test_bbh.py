"""BIG-Bench Hard: loading the real files, prompts, answer extraction and
exact match, subtask interleaving."""
import json
from pathlib import Path

import pytest

from ncalm.eval.reasoning import bbh
from ncalm.eval.reasoning.tasks import bbh_task

DATA = Path(__file__).parent / "fixtures" / "bbh"  # real examples: fixtures/README.md says which


def test_loads_all_real_tasks():
    tasks = bbh.load(DATA)
    assert len(tasks) == 7
    assert sum(len(v) for v in tasks.values()) == 7 * 8 + 1
    assert len(tasks["boolean_expressions"]) == 8
    assert tasks["date_understanding"][0].target == "(B)"


def test_exact_match_on_real_targets():
    for name, examples in bbh.load(DATA, ["boolean_expressions", "date_understanding",
                                          "word_sorting", "dyck_languages"]).items():
        targets = {e.target for e in examples}
        for e in examples:
            assert bbh.is_correct(f" {e.target}\n", e)
            assert bbh.is_correct(f"Let's see. So the answer is {e.target}.", e, cot=True)
            other = next(t for t in targets if t != e.target)
            assert not bbh.is_correct(f" {other}\n", e)


@pytest.mark.parametrize("generation, cot, expected", [
    (" True", False, "True"),
    (" (B).\nQ: next question", False, "(B)"),
    ("A is 3. So the answer is 5. Wait, the answer is 7.", True, "7"),
    ("no conclusion here", True, ""),
    ("", False, ""),
])
def test_extract_answer(generation, cot, expected):
    assert bbh.extract_answer(generation, cot) == expected


def test_direct_prompt_layout():
    shots = [bbh.Example("t", "1 + 1 is", "2")]
    assert bbh.direct_prompt(shots, "2 + 2 is") == "Q: 1 + 1 is\nA: 2\n\nQ: 2 + 2 is\nA:"


def test_cot_prompt_has_no_canary():
    demos = bbh.load_cot_prompt(DATA / "cot-prompts" / "boolean_expressions.txt")
    assert "canary" not in demos and demos.startswith("Evaluate the result")
    assert bbh.cot_prompt(demos, "True is").endswith("Q: True is\nA: Let's think step by step.")


def test_items_interleave_tasks_and_exclude_demonstrations():
    spec = bbh_task(str(DATA), ["navigate", "snarks"], shots=3, cot=False, limit=6)
    assert [i.id for i in spec.items] == ["navigate/3", "snarks/3", "navigate/4", "snarks/4",
                                         "navigate/5", "snarks/5"]
    navigate = bbh.load_task(DATA / "navigate.json")
    assert spec.items[0].prompt.startswith(f"Q: {navigate[0].input}\nA: {navigate[0].target}\n\n")
    assert spec.stop == ("\n",)
    [sample] = spec.score(spec.items[0], [" " + navigate[3].target])
    assert sample["correct"]


def test_bad_inputs(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"examples": [{"input": "x"}]}))
    with pytest.raises(ValueError, match="example 0"):
        bbh.load(tmp_path)
    with pytest.raises(ValueError, match="unknown BBH task"):
        bbh.load(tmp_path, ["nope"])
    with pytest.raises(FileNotFoundError):
        bbh.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="--bbh-tasks"):
        bbh.load(None, None)
