"""Per-problem results as JSONL (resumable, auditable) and the summary table.

Layout of an output directory:
  config.json    the settings that produced the samples (checked on resume)
  samples.jsonl  one record per problem: id, group, completions, correctness (bbl: the answer
                 letter and each letter's log-probability instead of completions)
  results.json   summary: pass@k overall and per group
  results.md     the same as a markdown table
  humaneval_samples.jsonl / gsm8k_samples.jsonl
                 every completion in the layout other harnesses read: OpenAI human-eval's
                 {task_id, completion} (its evaluate_functional_correctness takes the file as
                 is) and GSM8K's {question, answer}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from ncalm.atomic_json import read_json, read_jsonl, write_json, write_jsonl, write_text
from ncalm.eval.reasoning.passk import mean_pass_at_k
from ncalm.settings import check_same


class ResultsStore:
    """Append-only per-problem records; a run with the same config resumes. Used as a context manager, it
    turns Ctrl-C into a KeyboardInterrupt that says what it keeps and how to go on."""

    def __init__(self, directory: str | Path, config: dict):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.samples = self.dir / "samples.jsonl"
        config_path = self.dir / "config.json"
        if config_path.exists():
            check_same(read_json(config_path, what="config of `ncalm eval-reasoning`"), config, (), str(self.dir))
        else:
            write_json(config_path, config)
        self.records: dict[str, dict] = {}
        if self.samples.exists():
            # A record cut short by an interrupted run is dropped: that problem is redone.
            self.records = {r["id"]: r for r in read_jsonl(self.samples)}
            # Rewrite without the partial line so appends start on a fresh line.
            write_jsonl(self.samples, self.records.values())

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is KeyboardInterrupt:
            n = len(self.records)
            raise KeyboardInterrupt(f"the results of {n} problem{'s' * (n != 1)} are kept in {self.samples}: run "
                                    f"the same command again to go on from there") from None

    def __contains__(self, problem_id: str) -> bool:
        return problem_id in self.records

    def rescore(self, items: dict, score: Callable[[Any, list[str]], list[dict]]) -> int:
        """Score every stored record of a problem in `items` (by id) anew from its
        stored completions (an edited count or flag must not change the result);
        returns how many records changed, which are rewritten."""
        changed = 0
        for pid, record in self.records.items():
            if pid not in items:
                continue  # not asked for now (e.g. a smaller --limit): not summarized either
            try:
                completions = [s["completion"] for s in record["samples"]]
            except (KeyError, TypeError):
                raise ValueError(f"{self.samples}: the record of {pid} holds no completions; "
                                 f"delete that line to redo the problem, or use another --out") from None
            fresh = {**record, "n": len(completions), "samples": score(items[pid], completions)}
            fresh["c"] = sum(bool(s["correct"]) for s in fresh["samples"])
            if fresh != record:
                self.records[pid], changed = fresh, changed + 1
        if changed:
            write_jsonl(self.samples, self.records.values())
        return changed

    def add(self, problem_id: str, group: str, samples: Sequence[dict]) -> dict:
        """Record one problem's samples; each sample dict needs a bool 'correct'."""
        record = {"id": problem_id, "group": group, "n": len(samples),
                  "c": sum(bool(s["correct"]) for s in samples), "samples": list(samples)}
        with open(self.samples, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.records[problem_id] = record
        return record


def summarize(records: Sequence[dict], ks: Sequence[int]) -> dict:
    """pass@k over all problems and per group (e.g. BBH subtask)."""
    if not records:
        raise ValueError("no problem records to summarize")

    def row(rs):
        return {"problems": len(rs), "n": min(r["n"] for r in rs),
                "pass@k": {str(k): v for k, v in
                           mean_pass_at_k([(r["n"], r["c"]) for r in rs], ks).items()}}

    summary = {"overall": row(records)}
    # Extra per-sample scores (GSM8K's strict and flexible extraction) as rows of their own.
    for key in ("strict", "flexible"):
        if all(key in smp for r in records for smp in r.get("samples") or [{}]):
            summary.setdefault("scores", {})[key] = row(
                [{**r, "c": sum(bool(smp[key]) for smp in r["samples"])} for r in records])
    groups = sorted({r["group"] for r in records})
    if len(groups) > 1:
        summary["groups"] = {g: row([r for r in records if r["group"] == g]) for g in groups}
    return summary


def markdown_table(title: str, summary: dict) -> str:
    ks = list(summary["overall"]["pass@k"])
    labels = {"strict": "strict (#### N)", "flexible": "flexible (last number)"}
    rows = ([("all", summary["overall"])] + [(labels[k], r) for k, r in summary.get("scores", {}).items()]
            + list(summary.get("groups", {}).items()))
    lines = [f"## {title}", "", "| subset | problems | n | " + " | ".join(f"pass@{k}" for k in ks) + " |",
             "|---|---:|---:|" + "---:|" * len(ks)]
    for name, r in rows:
        cells = " | ".join(f"{100 * r['pass@k'][k]:.1f}" for k in ks)
        lines.append(f"| {name} | {r['problems']} | {r['n']} | {cells} |")
    note = ("\n\n'all' takes the number after #### and else the last number; 'strict' only the number after "
            "####, 'flexible' only the last number." if summary.get("scores") else "")
    return "\n".join(lines) + "\n\npass@k in percent (unbiased estimator, Chen et al. 2021)." + note + "\n"


def write_tables(directory: str | Path, title: str, summary: dict, config: dict) -> tuple[Path, Path]:
    """Write results.json (summary and config) and results.md; returns both paths."""
    return (write_json(Path(directory) / "results.json", {"title": title, "config": config, **summary}),
            write_text(Path(directory) / "results.md", markdown_table(title, summary)))


def write_standard_samples(directory: str | Path, task: str, items: Sequence, records: dict[str, dict]) -> Path | None:
    """Write ``TASK_samples.jsonl`` (see the module doc) for humaneval and gsm8k; None for other tasks.

    ``items`` are the task's items in order, ``records`` the store's records by item id.
    """
    def completions(item):
        return (s["completion"] for s in records[item.id]["samples"])

    if task == "humaneval":
        rows = [{"task_id": item.id, "completion": c} for item in items for c in completions(item)]
    elif task == "gsm8k":
        rows = [{"question": item.reference.question, "answer": c} for item in items for c in completions(item)]
    else:
        return None
    return write_jsonl(Path(directory) / f"{task}_samples.jsonl", rows)
