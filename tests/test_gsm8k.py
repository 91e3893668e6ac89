"""GSM8K: answer extraction on the real solutions, numeric comparison,
prompts, loading errors and the fine-tuning loop."""
import json
from pathlib import Path

import pytest
import torch

from ncalm.eval.reasoning import gsm8k
from ncalm.eval.reasoning.finetune import finetune

DATA = Path(__file__).parent / "fixtures" / "gsm8k"  # real records: fixtures/README.md says which


def test_gold_answers_of_real_solutions():
    test = gsm8k.load(DATA, "test")
    assert len(test) == 9
    assert [gsm8k.gold_answer(e.answer) for e in test[:3]] == ["18", "3", "70000"]
    by_tail = {e.answer.rsplit("####", 1)[1].strip(): e for e in test}
    assert gsm8k.gold_answer(by_tail["1,600"].answer) == "1600"
    assert gsm8k.gold_answer(by_tail["-10"].answer) == "-10"


@pytest.mark.parametrize("split", ["train", "test"])
def test_extraction_agrees_with_gold_on_every_solution(split):
    examples = gsm8k.load(DATA, split)
    for e in examples:
        tail = e.answer.rsplit("####", 1)[1].strip().replace(",", "")
        assert gsm8k.extract_answer(e.answer) == tail
        # Without the final line, the fallback still finds a number in the reasoning.
        assert gsm8k.extract_answer(e.answer.rsplit("####", 1)[0]) is not None
        assert gsm8k.is_correct(" " + gsm8k.clean_solution(e.answer), e)


@pytest.mark.parametrize("text, expected", [
    ("He pays 3 * 2 = $6.\n#### 6", "6"),
    ("#### 5\n\nQuestion: how many are 7?", "5"),   # the marked answer wins over later numbers
    ("so she makes $18.", "18"),                    # last-number fallback, sentence period dropped
    ("The total is 1,234.5 dollars", "1234.5"),
    ("between 1,2 and 3", "3"),
    ("the loss is -4 dollars", "-4"),
    ("no digits at all", None),
    ("#### 1,000,000", "1000000"),
    ("#### -$5", "-5"),                             # the sign before the dollar sign is kept
    ("she lost -$12 on it", "-12"),
    ("from 2021-2022", "2022"),                     # a range, not a negative number
])
def test_extract_answer(text, expected):
    assert gsm8k.extract_answer(text) == expected


def test_numeric_comparison():
    assert gsm8k.same_number("18", "18.00")
    assert gsm8k.same_number("-3", "-3.0")
    assert not gsm8k.same_number("18", "180")
    assert not gsm8k.same_number(None, "1")


def test_prompt_layout_strips_calculator_annotations():
    shot = gsm8k.Example("How many?", "2 * 3 = <<2*3=6>>6 apples\n#### 6")
    prompt = gsm8k.few_shot_prompt([shot], "And now?")
    assert prompt == "Question: How many?\nAnswer: 2 * 3 = 6 apples\n#### 6\n\nQuestion: And now?\nAnswer:"
    assert gsm8k.few_shot_prompt([], "Q?") == "Question: Q?\nAnswer:"


def test_loading_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train"):
        gsm8k.load(tmp_path, "train")
    bad = tmp_path / "test.jsonl"
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="test.jsonl:1"):
        gsm8k.load(bad)
    with pytest.raises(ValueError, match="####"):
        gsm8k.gold_answer("no final line")


def test_finetune_learns_answers_and_masks_the_question():
    # Greedy strings of a barely trained model depend on torch's CPU kernels (AVX2 vs
    # AVX-512): what is exact here is which tokens are targets; learning is measured by loss.
    from ncalm.lm.model import LlamaLM, model_config
    from ncalm.lm.tokenizer import ByteTokenizer

    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = LlamaLM(model_config("tiny", vocab_size=tok.vocab_size, max_seq_len=128))
    examples = [gsm8k.Example(f"What is {a} plus {b}?", f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}")
                for a, b in [(2, 3), (10, 7), (41, 1), (6, 6)]]
    pairs = gsm8k.training_pairs(examples)
    seen, forward = [], model.forward  # every (inputs, targets) row finetune trains on
    model.forward = lambda idx, targets: seen.extend(zip(idx.tolist(), targets.tolist())) or forward(idx, targets)
    losses = finetune(model, tok, pairs, epochs=60, lr=5e-3, batch_size=4)
    del model.forward
    assert losses[-1] < 0.2 and losses[0] > 3.0 and len(seen) == 4 * 60
    encoded = [(tok.encode(p), tok.encode(t) + [tok.eos_id]) for p, t in pairs]
    rows = {tuple((p + t)[:-1]): [-100] * (len(p) - 1) + t for p, t in encoded}
    for idx, targets in seen:  # exactly the answer bytes and EOS are targets, padding ignored
        key = next(r for r in rows if tuple(idx[:len(r)]) == r)
        assert targets == rows[key] + [-100] * (len(idx) - len(key))
    with torch.no_grad():  # every answer is learned; the questions, never targets, stay unpredictable
        for p, t in encoded:
            ids = torch.tensor([p + t])
            _, answer_loss = model(ids[:, :-1], targets=torch.tensor([[-100] * (len(p) - 1) + t]))
            _, question_loss = model(ids[:, :len(p) - 1], targets=ids[:, 1:len(p)])
            assert answer_loss.item() < 0.5 and question_loss.item() > 1.0


@pytest.mark.parametrize("kwargs, word", [
    (dict(epochs=0), "epochs"), (dict(lr=0.0), "lr"), (dict(batch_size=0), "batch_size"),
])
def test_finetune_rejects_bad_settings(kwargs, word):
    from ncalm.lm.model import LlamaLM, model_config
    from ncalm.lm.tokenizer import ByteTokenizer

    model = LlamaLM(model_config("tiny", vocab_size=257, max_seq_len=32))
    with pytest.raises(ValueError, match=word):
        finetune(model, ByteTokenizer(), [("q", "a")], **kwargs)
