"""BIG-Bench Hard (Suzgun et al. 2022): few-shot exact match.

Direct prompting uses each task's first `shots` examples as demonstrations
and scores the rest; chain-of-thought prompting uses the task's published
3-shot prompt (`cot-prompts/<task>.txt`) and reads "the answer is X".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ncalm.eval.reasoning.hub import load_hf

HF_NAME = "lukaemon/bbh"
STOP = ("\n\nQ:", "\nQ:")
DIRECT_STOP = ("\n",)
_ANSWER_IS = "the answer is"
COT_ANSWER = "A: Let's think step by step."  # opens each CoT demonstration's answer, and the one to write


@dataclass(frozen=True)
class Example:
    task: str
    input: str
    target: str


def load_task(path: str | Path) -> list[Example]:
    """The examples of one BBH JSON file ({"examples": [{input, target}]})."""
    path = Path(path)
    expected = "a BBH task file is a UTF-8 JSON object with an 'examples' list of {input, target}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text (compressed, or another task's file?); {expected}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {expected}") from None
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
        raise ValueError(f"{path}: expected a JSON object with an 'examples' list")
    out = []
    for i, e in enumerate(data["examples"]):
        if "input" not in e or "target" not in e:
            raise ValueError(f"{path}: example {i} needs 'input' and 'target'")
        out.append(Example(path.stem, e["input"], str(e["target"])))
    return out


def load(path: str | Path | None = None, tasks: Sequence[str] | None = None) -> dict[str, list[Example]]:
    """Tasks by name from a directory of BBH JSON files or one file, or from
    the Hugging Face hub when `path` is None (then `tasks` must be given)."""
    if path is None:
        if not tasks:
            raise ValueError("tasks: name the BBH tasks to fetch from the hub (--bbh-tasks)")
        return {t: [Example(t, r["input"], r["target"]) for r in load_hf(HF_NAME, t, "test")]
                for t in tasks}
    path = Path(path)
    if path.is_file():
        files = {path.stem: path}
    elif path.is_dir():
        files = {p.stem: p for p in sorted(path.glob("*.json"))}
    else:
        raise FileNotFoundError(f"BBH data not found: {path}")
    if tasks:
        unknown = [t for t in tasks if t not in files]
        if unknown:
            raise ValueError(f"unknown BBH task(s) {', '.join(unknown)}; {path} has: "
                             f"{', '.join(files)}")
        files = {t: files[t] for t in tasks}
    if not files:
        raise FileNotFoundError(f"no BBH .json task files in {path}")
    return {name: load_task(p) for name, p in files.items()}


def direct_prompt(shots: Sequence[Example], question: str) -> str:
    demos = "".join(f"Q: {s.input}\nA: {s.target}\n\n" for s in shots)
    return f"{demos}Q: {question}\nA:"


def load_cot_prompt(path: str | Path) -> str:
    """A published CoT prompt file without its canary header (text after '-----')."""
    text = Path(path).read_text(encoding="utf-8")
    head, sep, body = text.partition("-----\n")
    return (body if sep else text).strip()


def cot_shots(demos: str) -> int:
    """The demonstrations in a CoT prompt: its answers."""
    return demos.count(COT_ANSWER)


def cot_prompt(demos: str, question: str) -> str:
    return f"{demos}\n\nQ: {question}\n{COT_ANSWER}"


def extract_answer(generation: str, cot: bool = False) -> str:
    """The predicted answer: text after the last "the answer is" for CoT, the
    first line otherwise; trailing period and whitespace removed."""
    if cot:
        at = generation.lower().rfind(_ANSWER_IS)
        if at == -1:
            return ""
        generation = generation[at + len(_ANSWER_IS):]
    lines = generation.strip().splitlines()
    return lines[0].strip().rstrip(".").strip() if lines else ""


def is_correct(generation: str, example: Example, cot: bool = False) -> bool:
    """Exact match of the extracted answer with the target."""
    return extract_answer(generation, cot) == example.target.strip()
