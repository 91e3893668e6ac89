"""The three benchmarks behind one shape: prompts to complete, a scorer,
stop strings and a default generation length.

Default lengths are budgets in UTF-8 bytes, long enough for the reference
answers (the longest GSM8K test solution is 952 bytes, HumanEval canonical
solution 864, BBH target 182 (word_sorting), BBH chain-of-thought
demonstration answer 1774 (geometric_shapes)), and become tokens by the checkpoint's tokenizer:
one per byte for the byte tokenizer, about BYTES_PER_TOKEN for BPE."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from ncalm.eval.reasoning import bbh, gsm8k, humaneval
from ncalm.eval.reasoning.sandbox import Limits, isolation_warning, probe_python


@dataclass(frozen=True)
class Item:
    id: str
    group: str
    prompt: str
    reference: Any


BYTES_PER_TOKEN = 4  # about, for BPE on English and code
GSM8K_BYTES, HUMANEVAL_BYTES, BBH_BYTES, BBH_COT_BYTES = 1024, 1536, 256, 2048


@dataclass(frozen=True)
class TaskSpec:
    items: list[Item]
    stop: tuple[str, ...]
    max_new_bytes: int  # the default generation budget, in bytes: see default_max_new_tokens
    # (item, completions) -> one dict per completion with at least "correct"
    score: Callable[[Item, Sequence[str]], list[dict]]
    # demonstrations each prompt holds, which a small pool or --bbh-cot's prompts make differ from --shots
    # (by subtask where those prompts differ); None: the task takes none
    shots: int | dict[str, int] | None = None

    def default_max_new_tokens(self, tokenizer) -> int:
        """The default budget in ``tokenizer``'s tokens: a byte tokenizer spends one per byte."""
        return self.max_new_bytes if tokenizer.kind == "byte" else self.max_new_bytes // BYTES_PER_TOKEN


def gsm8k_task(data: str | None, shots: int, limit: int | None) -> TaskSpec:
    """GSM8K test problems; demonstrations are the first `shots` train examples."""
    test = gsm8k.load(data, "test")
    demos = gsm8k.load(gsm8k.train_path(data), "train")[:shots] if shots else []
    if len(demos) < shots:  # a small local train split; every example still helps, so warn, not refuse
        print(f"warning: --shots {shots}: the GSM8K train split has only {len(demos)} examples; "
              f"prompting with {len(demos)} demonstrations", file=sys.stderr)
    items = [Item(f"test/{i}", "gsm8k", gsm8k.few_shot_prompt(demos, e.question), e)
             for i, e in enumerate(test[:limit])]

    def score(item: Item, completions: Sequence[str]) -> list[dict]:
        gold = gsm8k.gold_answer(item.reference.answer)
        # "correct" (#### else the last number) as before; strict and flexible are reported apart.
        return [{"completion": c, "answer": (answer := gsm8k.extract_answer(c)), "gold": gold,
                 "correct": gsm8k.same_number(answer, gold),
                 "strict": gsm8k.same_number(gsm8k.strict_answer(c), gold),
                 "flexible": gsm8k.same_number(gsm8k.flexible_answer(c), gold)} for c in completions]

    return TaskSpec(items, gsm8k.STOP, GSM8K_BYTES, score, len(demos))


def humaneval_task(data: str | None, limit: int | None, limits: Limits, workers: int,
                   python: str | None) -> TaskSpec:
    """HumanEval problems; completions run in the sandbox."""
    problems = humaneval.load_problems(data)[:limit]
    if python is not None:  # else every completion would count as failed, for the interpreter's fault
        probe = probe_python(python)
        if not probe.passed:
            raise ValueError(f"--sandbox-python {python}: cannot run a program in the sandbox ({probe.detail})")
    warning = isolation_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    items = [Item(p.task_id, "humaneval", p.prompt, p) for p in problems]

    def score(item: Item, completions: Sequence[str]) -> list[dict]:
        results = humaneval.evaluate([(item.reference, c) for c in completions], limits, workers,
                                     python)
        return [{"completion": c, "correct": r.passed, "status": r.status, "detail": r.detail}
                for c, r in zip(completions, results)]

    return TaskSpec(items, humaneval.STOP, HUMANEVAL_BYTES, score)


def bbh_task(data: str | None, tasks: Sequence[str] | None, shots: int | None, cot: bool,
             limit: int | None) -> TaskSpec:
    """BBH examples, interleaved across subtasks so a --limit covers all of them. With ``cot`` the prompts'
    own demonstrations are used; ``shots`` (None: not given) only warns where they differ from it."""
    by_task = bbh.load(data, tasks)
    queues, used = [], {}
    if cot and (data is None or not Path(data).is_dir()):
        raise ValueError("--bbh-cot needs --data DIR holding cot-prompts/<task>.txt")
    for name, examples in by_task.items():
        if cot:  # the published demonstrations; every example is scored
            demos = bbh.load_cot_prompt(Path(data) / "cot-prompts" / f"{name}.txt")
            prompt, first, used[name] = partial(bbh.cot_prompt, demos), 0, bbh.cot_shots(demos)
        elif len(examples) <= shots:
            raise ValueError(f"--shots {shots}: BBH task {name} has only {len(examples)} examples")
        else:  # the first examples are the demonstrations
            prompt, first = partial(bbh.direct_prompt, examples[:shots]), shots
        queues.append([Item(f"{name}/{i}", name, prompt(e.input), e) for i, e in enumerate(examples) if i >= first])
    # --bbh-cot prompts hold their own demonstrations (the published ones 3 each): by task only where they differ
    recorded = used if len(set(used.values())) > 1 else next(iter(used.values()), shots)
    if cot and shots is not None and recorded != shots:
        held = ", ".join(f"{k} {n}" for k, n in used.items()) if isinstance(recorded, dict) else recorded
        print(f"warning: --shots {shots}: the --bbh-cot prompts hold {held} demonstrations; prompting with "
              f"those", file=sys.stderr)
    longest = max(len(q) for q in queues)
    items = [q[i] for i in range(longest) for q in queues if i < len(q)]

    def score(item: Item, completions: Sequence[str]) -> list[dict]:
        return [{"completion": c, "answer": bbh.extract_answer(c, cot),
                 "target": item.reference.target, "correct": bbh.is_correct(c, item.reference, cot)}
                for c in completions]

    return TaskSpec(items[:limit], bbh.STOP if cot else bbh.DIRECT_STOP,
                    BBH_COT_BYTES if cot else BBH_BYTES, score, recorded)
