"""What `ncalm eval bpb|icl|speedup` take, one settings class per mode (its docstring, its --help, says what its
numbers mean); what the checkpoint modes share is declared once, in :class:`CheckpointEval`."""
from __future__ import annotations

from dataclasses import dataclass

from ncalm.data.config import TextConfig
from ncalm.devices import DEVICE_HELP
from ncalm.nca.config import check_seed, parse_band
from ncalm.settings import Settings, SettingError, at_least, in_range, parse_count, same_as, setting
from ncalm.train.config import RunConfig


def require_checkpoint(checkpoint: str | None) -> None:
    """The one setting every command that evaluates a checkpoint cannot do without."""
    if checkpoint is None:
        raise SettingError("checkpoint", "required: the checkpoint to evaluate (--checkpoint PATH)")


@dataclass
class CheckpointEval(Settings):
    """The settings of a mode that evaluates one checkpoint (bpb, icl)."""

    DASHED = True  # options --checkpoint, --batch-size, ... named after the fields

    checkpoint: str | None = setting(None, "checkpoint to evaluate (required, no default)")
    batch_size: int = setting(8, "windows (bpb) or sequences (icl) per forward pass", check=at_least(1))
    device: str = same_as(RunConfig, "device", help=DEVICE_HELP)
    progress: bool = same_as(RunConfig, "progress", help="no progress bars (progress=false)")
    json: str | None = setting(None, "also write the result to this JSON file")

    def validate(self) -> None:
        require_checkpoint(self.checkpoint)


@dataclass
class BpbConfig(CheckpointEval):
    """Perplexity and bits per byte of a language-stage checkpoint on held-out text.

    The documents become one stream EOS d1 EOS d2 ..., cut into windows of
    --seq-len predictions with no overlap, so every token is predicted once:
      loss          mean next-token cross-entropy, nats/token
      perplexity    exp(loss)
      bits/byte     total nats / (ln 2 x UTF-8 bytes of the documents)
    Bits per byte does not depend on the tokenizer: byte-level and BPE models compare."""

    data: str | None = setting(None, "corpus spec (stdlib, files/dirs/globs, hf:NAME), or token shards (bin:DIR, or "
                                     "a DIR holding train.bin and val.bin: val.bin is evaluated, and DIR must hold "
                                     "the checkpoint's tokenizer.json); default: the checkpoint's, refused when its "
                                     "files changed since training (name it here to evaluate it as it is now)")
    val_percent: float | None = setting(None, "validation share of the split; default: the checkpoint's, else "
                                              f"{TextConfig.val_percent:g}",
                                        check=in_range(0, 100, open_low=True, open_high=True))
    max_bytes: int | None = setting(
        None, "cap on validation text, e.g. 500k, applied as the trainer applies max_val_bytes: documents are added "
              "in the split's order until their total UTF-8 bytes reach it, the last one kept whole (val.bin: tokens "
              "until their bytes reach it); default, when data is the checkpoint's corpus: what its own report used "
              "(an experiment's bpb_bytes, within the stage's max_val_bytes; token files: all of val.bin), else "
              f"{TextConfig.max_val_bytes / 1e6:g}M",
        check=at_least(1), parse=parse_count)
    seq_len: int | None = setting(None, "window length; default: the model's max_seq_len", check=at_least(1))


@dataclass
class IclConfig(CheckpointEval):
    """In-context learning on NCA: can an NCA-stage model infer an unseen rule from
    k frames of its trajectory?

    For each band, --rules fresh rules (never in training) are simulated; the
    model sees k frames plus the next frame's START and greedily decodes that
    frame. Tokens are decoded back to cells:
      cell acc      fraction of cells right
      frame acc     fraction of frames with every cell right
    The baseline in parentheses copies the last frame it was shown: what a model
    blind to the rule scores. The training band is always evaluated."""

    batch_size: int = same_as(CheckpointEval, "batch_size", default=16)
    k: list[int] = setting([], "frames of context, e.g. 1 2 4; default: 1, 2, 4, ... up to what fits the model's "
                               "context")
    rules: int = setting(64, "fresh rules per band", check=in_range(1, 2**32, shown="[1, 2**32]"))
    bands: list[tuple[float, float] | None] = setting(
        [(0.0, 0.3), (0.3, 0.5)], "other complexity bands LOWER,UPPER besides the training band (none: unfiltered; "
        "--bands alone: only the training band)", parse=parse_band, empty=True)
    seed: int = setting(0, "generator seed of the test rules", check=check_seed)


@dataclass
class SpeedupConfig(Settings):
    """Convergence speedup of each --run over --baseline, from their metrics.jsonl
    validation curves (the same language data and schedule, e.g. an NCA arm vs
    scratch):
      speedup = tokens the baseline needs to reach its final loss
                / tokens the run needs to reach that loss
    each "needs" the first crossing, linearly interpolated between evaluations.
    Without such a crossing the run gets a status instead:
      already at the baseline's final loss at its first evaluation
                    the speedup shown is only a lower bound
      never reaches, n/a (a curve with one evaluation, or a baseline ending no
      lower than it starts), diverged (a NaN or infinite loss)
                    no speedup number
    The change of the final loss, 100 x (run / baseline - 1) %, negative = better
    (as in the experiment's table), is printed whenever both are finite."""

    DASHED = True  # options --baseline, --run, --x, --y, --json

    baseline: str | None = setting(None, "metrics JSONL of the baseline (e.g. scratch), or its run directory "
                                         "(required, no default)")
    run: list[str] = setting([], "metrics JSONL (or run directory) of one or more other runs (required, no default)")
    x: str = setting("tokens", "JSONL key of the token count")
    y: str = setting("val_loss", "JSONL key of the validation loss")
    json: str | None = same_as(CheckpointEval, "json")

    def validate(self) -> None:
        for name in ("baseline", "run"):
            if not getattr(self, name):
                raise SettingError(name, f"required: the metrics JSONL or run directory (--{name} PATH)")
