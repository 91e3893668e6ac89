"""BIG-bench Lite multiple choice by log-probability, as the reference code scores it.

Data, local only: a folder (or one file) in either layout
- BIG-bench's own: ``TASK/task.json`` with ``{"examples": [{"input", "target_scores": {choice: score}}]}``;
- Hugging Face ``tasksource/bigbench``: ``TASK.jsonl`` / ``TASK.json`` rows with ``inputs``,
  ``targets``, ``multiple_choice_targets``, ``multiple_choice_scores``.
Both become the second form. Free-form examples (no choices) are skipped, as by the reference.

The prompt is the reference's (``utils/dataset_utils.py`` BigBenchDataset with
``mc_letter_format``): the input without ``Question:``/``Q:``/``Answer:``/``A:`` markers and
without its inline ``choice:`` list, the choices as lettered lines ``A. ...``, wrapped as
``Question:\\n{input}\\n\\nA. ...\\n\\nAnswer:\\n``; few-shot demonstrations (the reference's
``bbl_prompts.json``, same layout, ``{task: [rows]}``) come first, each followed by its first
correct letter and a blank line. The model's answer is the letter with the highest
log-probability after the prompt; it is right when that choice's score is > 0.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _rows(data: object, where: str) -> list[dict]:
    if isinstance(data, dict) and "examples" in data:  # BIG-bench task.json
        rows = []
        for e in data["examples"]:
            scores = e.get("target_scores") or {}
            target = e.get("target", [c for c, s in scores.items() if s > 0])
            rows.append({"inputs": e["input"], "targets": target if isinstance(target, list) else [target],
                         "multiple_choice_targets": list(scores), "multiple_choice_scores": list(scores.values())})
        return rows
    if isinstance(data, list) and all(isinstance(r, dict) and "inputs" in r for r in data):
        return data
    raise ValueError(f"{where}: neither a BIG-bench task.json ('examples') nor rows with 'inputs'")


def _read(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return _rows([json.loads(line) for line in text.splitlines() if line.strip()], str(path))
    return _rows(json.loads(text), str(path))


def load(data: str | Path) -> dict[str, list[dict]]:
    """``{task: rows}`` from a folder of BIG-bench task folders or HF-layout files, or one such file."""
    root = Path(data)
    if root.is_file():
        return {root.parent.name if root.name == "task.json" else root.stem: _read(root)}
    if not root.is_dir():
        raise FileNotFoundError(f"BIG-bench Lite data {root} does not exist")
    tasks = {p.parent.name: _read(p) for p in sorted(root.glob("*/task.json"))}
    tasks.update({p.stem: _read(p) for p in sorted([*root.glob("*.jsonl"), *root.glob("*.json")])})
    if not tasks:
        raise FileNotFoundError(f"{root} holds no TASK/task.json nor TASK.jsonl/TASK.json")
    if not any(r.get("multiple_choice_targets") for rows in tasks.values() for r in rows):
        # e.g. BBH's folder: a table of NaN accuracies would read as a result
        raise ValueError(f"{root}: none of its {len(tasks)} tasks has multiple-choice examples (BIG-bench "
                         "Lite is scored by the most likely choice)")
    return tasks


def question(row: dict) -> str:
    """The reference's prompt for one example, up to and including ``Answer:\\n``."""
    text = row["inputs"]
    for marker in ("Question:", "Q:", "Answer:", "A:"):
        text = text.replace(marker, "")
    text = text.split("choice:")[0]
    choices = row.get("multiple_choice_targets") or []
    if choices:
        text += "\n" + "".join(f"\n{LETTERS[i]}. {c}" for i, c in enumerate(choices[:len(LETTERS)]))
    return f"Question:\n{text}\n\nAnswer:\n"


def correct_letters(row: dict) -> list[str]:
    return [LETTERS[i] for i, s in enumerate(row.get("multiple_choice_scores") or []) if s > 0 and i < len(LETTERS)]


def prompt(row: dict, shots: list[dict]) -> str:
    demos = "".join(question(d) + f"{(correct_letters(d) or d['targets'])[0]}\n\n" for d in shots)
    return demos + question(row)


@torch.no_grad()
def choose(model, tokenizer, text: str, n_choices: int, device) -> tuple[int, list[float]] | None:
    """(index of the most likely letter, each letter's log-probability) after ``text``; None when the
    prompt and a letter do not fit the model's context (the reference skips those)."""
    ids = tokenizer.encode(text)
    scores = []
    for letter in LETTERS[:n_choices]:
        answer = tokenizer.encode(letter)
        seq = ids + answer
        if len(seq) > model.cfg.max_seq_len:
            return None
        logits, _ = model(torch.tensor([seq], device=device))
        logp = F.log_softmax(logits[0, len(ids) - 1:len(seq) - 1].float(), dim=-1)
        scores.append(float(logp.gather(1, torch.tensor(answer, device=device)[:, None]).sum()))
    return max(range(n_choices), key=scores.__getitem__), scores


def evaluate(model, tokenizer, tasks: dict[str, list[dict]], shots: dict[str, list[dict]] | None = None,
             limit: int | None = None, device="cpu", progress: bool = False, store=None) -> dict:
    """Accuracy per task (and its chance level), and the mean over tasks, of log-probability multiple choice.

    ``store`` (a ResultsStore) keeps each example's record, id ``TASK/ROW``, with its ``answer`` letter and
    each letter's ``logprobs`` (none when it does not fit the context); an example it holds is not scored again,
    and its stored answer is judged against the data as it is now."""
    from tqdm import tqdm

    model.eval()
    out = {}
    for name, rows in tqdm(tasks.items(), desc="bbl", disable=not progress):
        mc = [(i, r) for i, r in enumerate(rows) if r.get("multiple_choice_targets")][:limit]
        right = scored = 0
        chance = 0.0
        for i, r in mc:
            n = min(len(r["multiple_choice_targets"]), len(LETTERS))
            pid = f"{name}/{i}"
            samples = store.records[pid]["samples"] if store is not None and pid in store else None
            if samples is None:
                got = choose(model, tokenizer, prompt(r, (shots or {}).get(name, [])), n, device)
                samples = [] if got is None else [{"answer": LETTERS[got[0]], "logprobs": got[1],
                                                   "correct": LETTERS[got[0]] in correct_letters(r)}]
                if store is not None:
                    store.add(pid, name, samples)
            if not samples:
                continue
            scored += 1
            right += samples[0]["answer"] in correct_letters(r)
            chance += len(correct_letters(r)) / n
        out[name] = {"examples": scored, "skipped": len(mc) - scored, "free_form": len(rows) - len(mc),
                     "accuracy": right / scored if scored else math.nan,
                     "chance": chance / scored if scored else math.nan}
    done = [t for t in out.values() if t["examples"]]
    mean = {key: sum(t[key] for t in done) / len(done) if done else math.nan for key in ("accuracy", "chance")}
    return {"tasks": out, "mean": mean}


def markdown_table(result: dict, title: str = "BIG-bench Lite") -> str:
    lines = [f"## {title} (multiple choice by log-probability)", "",
             "| task | examples | accuracy | chance |", "|---|---:|---:|---:|"]
    for name, t in result["tasks"].items():
        lines.append(f"| {name} | {t['examples']} | {100 * t['accuracy']:.1f} | {100 * t['chance']:.1f} |")
    m = result["mean"]
    lines.append(f"| mean over tasks | | {100 * m['accuracy']:.1f} | {100 * m['chance']:.1f} |")
    return "\n".join(lines) + "\n\nAccuracy in percent; chance: a uniform guess over the listed choices.\n"
