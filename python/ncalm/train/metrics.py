"""Metrics as JSON lines (one record per log or eval point), optionally mirrored to TensorBoard or
Weights & Biases (run.tracking)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ncalm.atomic_json import read_jsonl, write_jsonl


class MetricsLog:
    """Append-only JSONL; on resume, records after the resumed step are dropped (they were redone).

    ``tracking`` names trackers that get every numeric field of every record too, at its step:
    ``tensorboard`` (event files in ``tensorboard/`` beside the metrics; needs the tensorboard
    package) and ``wandb`` (needs wandb and a login; the run id is kept, so a resume continues it).
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None, enabled: bool = True,
                 tracking: tuple[str, ...] | list[str] = (), config: dict | None = None):
        self.path, self.enabled = Path(path), enabled
        self._trackers = [_tracker(name, self.path.parent, resume_step is not None, config or {})
                          for name in tracking] if enabled else []
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
            scalars = {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
            for log, _ in self._trackers:
                log(scalars, record["step"])

    def close(self) -> None:
        for _, close in self._trackers:
            close()
        self._trackers = []


def _tracker(name: str, out: Path, resumed: bool, config: dict):
    """``(log, close)`` for tracker ``name``: ``log(scalars, step)`` sends one record's numbers."""
    if name == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("run.tracking: tensorboard needs the tensorboard package "
                             "(pip install 'ncalm[tracking]')") from None
        writer = SummaryWriter(str(out / "tensorboard"))

        def log(scalars: dict, step: int) -> None:
            for key, value in scalars.items():
                writer.add_scalar(key, value, step)

        return log, writer.close
    try:
        import wandb
    except ImportError:
        raise ValueError("run.tracking: wandb needs the wandb package (pip install wandb) and a login") from None
    id_file = out / "wandb_id"
    run_id = id_file.read_text().strip() if resumed and id_file.exists() else wandb.util.generate_id()
    id_file.write_text(run_id)
    run = wandb.init(project="ncalm", name=str(out), id=run_id, resume="allow", dir=str(out), config=config)

    def log(scalars: dict, step: int) -> None:  # type: ignore[no-redef]
        run.log(scalars, step=step)

    return log, run.finish


read_metrics = read_jsonl  # all records of a metrics.jsonl file, less a last line torn by a killed run


def val_curve(records: list[dict]) -> list[tuple[int, float]]:
    """(tokens, val_loss) points, for convergence comparisons."""
    return [(r["tokens"], r["val_loss"]) for r in records if "val_loss" in r]
