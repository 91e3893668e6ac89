"""Metrics as JSON lines (one record per log or eval point) and the progress bar."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ncalm.atomic_json import read_jsonl, write_jsonl


class MetricsLog:
    """Append-only JSONL; on resume, records after the resumed step are dropped (they were redone)."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            write_jsonl(self.path, [r for r in read_metrics(self.path) if r["step"] <= resume_step])

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a metrics.jsonl file, less a last line torn by a killed run."""
    return read_jsonl(path)


def val_curve(records: list[dict]) -> list[tuple[int, float]]:
    """(tokens, val_loss) points, for convergence comparisons."""
    return [(r["tokens"], r["val_loss"]) for r in records if "val_loss" in r]


def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, unit="step")
