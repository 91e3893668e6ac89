"""HumanEval (Chen et al. 2021): load problems, build the check program,
run completions in the sandbox."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ncalm.atomic_json import json_records
from ncalm.eval.reasoning.config import ReasoningConfig
from ncalm.eval.reasoning.hub import load_hf
from ncalm.eval.reasoning.sandbox import ExecResult, Limits, run_program, sandbox_python

# The Codex paper's stop sequences: a new top-level statement ends the function body.
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
HF_NAME = "openai/openai_humaneval"


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str = ""


def _problem(record: dict, where: str) -> Problem:
    missing = [k for k in ("task_id", "prompt", "test", "entry_point") if k not in record]
    if missing:
        raise ValueError(f"{where}: HumanEval record lacks {', '.join(missing)}")
    return Problem(record["task_id"], record["prompt"], record["test"], record["entry_point"],
                   record.get("canonical_solution", ""))


def load_problems(path: str | Path | None = None) -> list[Problem]:
    """Problems from HumanEval.jsonl(.gz), or from the Hugging Face hub if `path` is None."""
    if path is None:
        return [_problem(dict(r), HF_NAME) for r in load_hf(HF_NAME, None, "test")]
    path = Path(path)
    if path.is_dir():
        path = path / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"HumanEval file not found: {path}")
    compressed = path.suffix == ".gz"
    expected = (f"HumanEval data is {'gzip-compressed ' if compressed else ''}UTF-8 JSON lines, one object with "
                "task_id, prompt, test and entry_point per line")
    return [_problem(record, where) for where, record in json_records(path, expected)]


def evaluate(pairs: Sequence[tuple[Problem, str]], limits: Limits = Limits(),
             workers: int = ReasoningConfig.workers, python: str | None = None) -> list[ExecResult]:
    """Execute each (problem, completion) in its own sandbox, `workers` at a time.

    The program is prompt and completion; the tests run outside it, with the
    prompt's helpers (e.g. HumanEval/38's encode_cyclic) taken from the
    trusted prompt, not from what the completion may have redefined. Threads
    only wait on child processes, so they cost no Python CPU time.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}: must be >= 1")
    python = python or sandbox_python()  # probed once, not by every thread

    def run(pair: tuple[Problem, str]) -> ExecResult:
        problem, completion = pair
        # "pass" completes a prompt whose function has no docstring (HumanEval's all do).
        tests = problem.prompt.rstrip() + "\n    pass\n\n" + problem.test
        return run_program(problem.prompt + completion, limits, python, tests, problem.entry_point)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, pairs))
