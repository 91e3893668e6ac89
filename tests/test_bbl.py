"""BIG-bench Lite by log-probability (ncalm.eval.reasoning.bbl) on tests/fixtures/bbl."""
import json
from pathlib import Path

import pytest
import torch

from ncalm.cli import main
from ncalm.eval.reasoning import bbl
from ncalm.lm.checkpoint import save_checkpoint
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.tokenizer import ByteTokenizer

DATA = Path(__file__).parent / "fixtures" / "bbl"


def test_both_layouts_load_to_the_same_rows():
    big = bbl.load(DATA / "bigbench")["logic_toy"]
    assert big[1]["multiple_choice_targets"] == ["green", "blue"] and bbl.correct_letters(big[1]) == ["B"]
    assert big[3]["multiple_choice_targets"] == []  # free-form: skipped by the scorer
    hf = bbl.load(DATA / "hf")["word_toy"]
    assert bbl.correct_letters(hf[1]) == ["B"] and len(hf) == 2


def test_the_references_prompt_format():
    row = bbl.load(DATA / "bigbench")["logic_toy"][1]
    assert bbl.question(row) == ("Question:\n What colour is the sky on a clear day? \n\nA. green\nB. blue"
                                 "\n\nAnswer:\n")
    shot = {"inputs": "Pick red.", "multiple_choice_targets": ["red", "dog"], "multiple_choice_scores": [1, 0]}
    assert bbl.prompt(row, [shot]).startswith("Question:\nPick red.\n\nA. red\nB. dog\n\nAnswer:\nA\n\nQuestion:")


class Prefers:
    """A stand-in model whose next token is ``letter`` with high probability, whatever the context."""

    def __init__(self, letter: str):
        self.cfg = model_config("tiny", vocab_size=257, max_seq_len=4096)
        self.letter = ord(letter)

    def eval(self):
        return self

    def __call__(self, x):
        logits = torch.zeros(*x.shape, 257)
        logits[..., self.letter] = 5.0
        return logits, None


def test_the_most_likely_letter_is_the_answer():
    tasks = bbl.load(DATA / "hf")
    r = bbl.evaluate(Prefers("B"), ByteTokenizer(), tasks)["tasks"]["word_toy"]
    assert r["accuracy"] == 1.0 and r["examples"] == 2 and r["chance"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert bbl.evaluate(Prefers("A"), ByteTokenizer(), tasks)["tasks"]["word_toy"]["accuracy"] == 0.0
    chosen, scores = bbl.choose(Prefers("B"), ByteTokenizer(), "Answer:\n", 3, "cpu")
    assert chosen == 1 and scores[1] > scores[0] == scores[2]


def test_log_probabilities_are_the_models(tmp_path):
    # Slow reference: the full sequence's log-softmax at the answer position.
    torch.manual_seed(0)
    model = LlamaLM(model_config("tiny", vocab_size=257, max_seq_len=512)).eval()
    tok = ByteTokenizer()
    text = bbl.prompt(bbl.load(DATA / "hf")["word_toy"][1], [])
    _, scores = bbl.choose(model, tok, text, 4, "cpu")
    ids = tok.encode(text)
    for i, letter in enumerate("ABCD"):
        logits, _ = model(torch.tensor([ids + [ord(letter)]]))
        assert scores[i] == pytest.approx(torch.log_softmax(logits[0, len(ids) - 1], -1)[ord(letter)].item(),
                                          abs=1e-5)


def _tiny_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = LlamaLM(model_config("tiny", vocab_size=tok.vocab_size, max_seq_len=512))
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, {"model": model.state_dict(), "model_config": model.cfg.to_dict(),
                           "tokenizer": tok.to_dict()})
    return ckpt


def test_cli_runs_from_local_files_on_a_tiny_checkpoint(tmp_path, capsys):
    ckpt = _tiny_checkpoint(tmp_path)
    for data in ("bigbench", "hf"):
        assert main(["eval-reasoning", "--task", "bbl", "--checkpoint", str(ckpt), "--data", str(DATA / data),
                     "--bbl-prompts", str(DATA / "prompts.json"), "--out", str(tmp_path / data),
                     "--no-progress", "--device", "cpu"]) == 0
        result = json.loads((tmp_path / data / "results.json").read_text())
        assert all(t["examples"] > 0 for t in result["tasks"].values())
    assert "| logic_toy | 3 |" in (tmp_path / "bigbench" / "results.md").read_text()
    assert main(["eval-reasoning", "--task", "bbl", "--checkpoint", str(ckpt)]) == 2
    assert "--task bbl reads local files" in capsys.readouterr().err


def test_cli_writes_each_examples_answer_and_a_rerun_resumes_from_them(tmp_path, capsys, monkeypatch):
    # Once no samples.jsonl and no "wrote" line for bbl, and a table titled alike for every checkpoint.
    ckpt = _tiny_checkpoint(tmp_path)
    argv = ["eval-reasoning", "--task", "bbl", "--checkpoint", str(ckpt), "--data", str(DATA / "bigbench"),
            "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]
    assert main([*argv, "--limit", "1"]) == 0
    out = tmp_path / "out"
    assert capsys.readouterr().out.endswith(f"wrote {out / 'results.md'}, {out / 'results.json'} and "
                                            f"{out / 'samples.jsonl'}\n")
    assert (out / "results.md").read_text().startswith(f"## bbl: {ckpt} (multiple choice by log-probability)\n")
    first = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in first] == [f"{task}/0" for task in bbl.load(DATA / "bigbench")]
    scored = []
    monkeypatch.setattr(bbl, "choose", lambda *a: scored.append(a) or (0, [0.0] * a[3]))
    assert main(argv) == 0  # all of them: only those not stored yet are scored
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    mc = {f"{task}/{i}": r for task, rows in bbl.load(DATA / "bigbench").items() for i, r in enumerate(rows)
          if r["multiple_choice_targets"]}
    assert records[:len(first)] == first and [r["id"] for r in records] == list(mc)
    assert len(scored) == len(mc) - len(first)
    for r in records:
        [sample] = r["samples"]
        assert sample["correct"] == (sample["answer"] in bbl.correct_letters(mc[r["id"]]))
        assert len(sample["logprobs"]) == len(mc[r["id"]]["multiple_choice_targets"])
    result = json.loads((out / "results.json").read_text())
    assert sum(t["examples"] for t in result["tasks"].values()) == len(mc)


def test_a_task_without_scored_examples_leaves_strict_json(tmp_path):
    # Its accuracy is NaN, which json.dumps writes as the non-JSON token NaN.
    ckpt = _tiny_checkpoint(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "free_toy.jsonl").write_text(json.dumps({"idx": 0, "inputs": "Say hi.", "targets": ["hi"]}) + "\n")
    with pytest.raises(ValueError, match="none of its 1 tasks has multiple-choice examples"):
        bbl.load(data)  # nothing to score at all is refused
    (data / "word_toy.jsonl").write_text((DATA / "hf" / "word_toy.jsonl").read_text())
    assert main(["eval-reasoning", "--task", "bbl", "--checkpoint", str(ckpt), "--data", str(data),
                 "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]) == 0

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    result = json.loads((tmp_path / "out" / "results.json").read_text(), parse_constant=refuse)
    assert result["tasks"]["free_toy"]["accuracy"] is None and isinstance(result["mean"]["accuracy"], float)
    assert result["tasks"]["free_toy"]["free_form"] == 1
