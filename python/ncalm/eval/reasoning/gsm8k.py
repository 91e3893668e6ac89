"""GSM8K (Cobbe et al. 2021): load, prompt, extract and compare answers."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

from ncalm.atomic_json import json_records
from ncalm.eval.reasoning.hub import load_hf

HF_NAME, HF_CONFIG = "openai/gsm8k", "main"
# Solutions are single-newline lines, so a blank line ends an answer.
STOP = ("\n\n", "Question:")
_FINAL = re.compile(r"####\s*(-?)\s*\$?\s*(-?[\d,]*\.?\d+)")  # "#### -$5" keeps its sign
# Thousands separators only in groups of three, so "1,2" stays two numbers.
# A minus sign, unless it joins two words or numbers ("2021-2022" is a range, not -2022).
_SIGN = r"(?:(?<![\w.])-)?"
_NUMBER = re.compile(_SIGN + r"\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|" + _SIGN + r"\$?\.\d+")
_CALCULATOR = re.compile(r"<<[^>]*>>")


@dataclass(frozen=True)
class Example:
    question: str
    answer: str  # chain of thought ending in "#### N"


def train_path(data: str | Path | None) -> str | Path | None:
    """Where the train split is, given the data the test split comes from: the
    same directory (or the hub, for None), else train.jsonl beside a test file."""
    if data is None or Path(data).is_dir():
        return data
    data = Path(data)
    return str(data.with_name("train.jsonl" + (".gz" if data.suffix == ".gz" else "")))


def load(path: str | Path | None = None, split: str = "test") -> list[Example]:
    """Examples of `split` from a JSONL file (.gz too), a directory holding
    `{split}.jsonl` (or .jsonl.gz), or the Hugging Face hub when `path` is None."""
    if path is None:
        return [Example(r["question"], r["answer"]) for r in load_hf(HF_NAME, HF_CONFIG, split)]
    path = Path(path)
    if path.is_dir():
        path = path / f"{split}.jsonl"
        if not path.exists() and path.with_name(path.name + ".gz").exists():
            path = path.with_name(path.name + ".gz")
    if not path.is_file():
        raise FileNotFoundError(f"GSM8K {split} file not found: {path}")
    expected = "GSM8K data is UTF-8 JSON lines (gzip if .gz), one object with 'question' and 'answer' per line"
    examples = []
    for where, record in json_records(path, expected):
        if "question" not in record or "answer" not in record:
            raise ValueError(f"{where}: GSM8K record needs 'question' and 'answer'; {expected}")
        examples.append(Example(record["question"], record["answer"]))
    return examples


def clean_solution(answer: str) -> str:
    """The solution without `<<a*b=c>>` calculator annotations, which only the
    original calculator-augmented decoding used."""
    return _CALCULATOR.sub("", answer)


def format_question(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def few_shot_prompt(shots: Sequence[Example], question: str) -> str:
    """Worked examples, then the question; the model continues after "Answer:"."""
    demos = "".join(f"{format_question(s.question)} {clean_solution(s.answer)}\n\n" for s in shots)
    return demos + format_question(question)


def _normalize(number: str) -> str:
    return number.replace(",", "").replace("$", "").rstrip(".")


def strict_answer(text: str) -> str | None:
    """Strict match: only the number after `#### `, sign included (what the reference's stop string '####'
    asks for), or None."""
    final = _FINAL.search(text)
    return _normalize(final.group(1) + final.group(2)) if final else None


def extract_answer(text: str) -> str | None:
    """The number after `#### `, else the last number in `text`, else None."""
    marked = strict_answer(text)
    return marked if marked is not None else flexible_answer(text)


def flexible_answer(text: str) -> str | None:
    """Flexible extraction: the last number in `text`, marked or not."""
    numbers = _NUMBER.findall(text)
    return _normalize(numbers[-1]) if numbers else None


def gold_answer(answer: str) -> str:
    """The reference number of a GSM8K solution (its `#### N` line)."""
    marked = strict_answer(answer)
    if marked is None:
        raise ValueError(f"GSM8K answer has no '#### N' line: {answer[-60:]!r}")
    return marked


def same_number(a: str | None, b: str | None) -> bool:
    """Numeric equality, so "18", "18.0" and "18.00" agree."""
    if a is None or b is None:
        return False
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


def is_correct(completion: str, example: Example) -> bool:
    return same_number(extract_answer(completion), gold_answer(example.answer))


def training_pairs(examples: Sequence[Example]) -> list[tuple[str, str]]:
    """(prompt, target) pairs for fine-tuning in the zero-shot prompt format."""
    return [(format_question(e.question), " " + clean_solution(e.answer)) for e in examples]
