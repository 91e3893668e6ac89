"""Training configuration as plain dataclasses (round-trip through dicts for checkpoints)."""
from __future__ import annotations

import math

from dataclasses import asdict, dataclass, field

from ncalm.fields import known_fields

DATA_KINDS = ("nca", "dyck", "text")


def check_model_overrides(overrides: dict) -> None:
    """Refuse what a stage would silently replace: the vocabulary size is the data's."""
    if "vocab_size" in overrides:
        raise ValueError(f"model_overrides: vocab_size={overrides['vocab_size']!r} cannot be set: the "
                         f"vocabulary comes from the data (its tokenizer, or the NCA or Dyck alphabet)")


@dataclass
class TransferConfig:
    """Which copied tensors ncalm.lm.transfer re-initialises or freezes (part specs: see ncalm.lm.transfer)."""

    reinit: list[str] = field(default_factory=list)
    freeze: list[str] = field(default_factory=list)
    keep_embeddings: bool = False  # copy embed/head too; the stage then reads text with the init's tokenizer


@dataclass
class DataConfig:
    """What the stage trains on. Only the fields of the chosen ``kind`` matter."""

    kind: str = "nca"                 # nca | dyck | text
    seq_len: int = 256
    seed: int = 0                     # data seed: rules/initial states, Dyck draws, window order
    workers: int = 0                  # DataLoader worker processes (0 = in the training process)
    # nca: NCAConfig fields other than seq_len (grid, colors, patch, band, ...); {} = its defaults
    nca: dict = field(default_factory=dict)
    pool_size: int = 0                # 0 = fresh rule per sequence; else rules per epoch (paper: 16000)
    epoch_sequences: int = 0          # sequences per rule-pool epoch
    gen_threads: int | None = None    # generator threads per call (None = generator default)
    gen_device: str = "auto"          # cpu | cuda | auto (the CUDA generator when training on a usable GPU)
    # dyck
    dyck_k: int = 4
    dyck_depth: int = 16
    # text
    text: str = "stdlib"              # stdlib | file/dir/glob[,...] | bin:DIR | hf:NAME[:CONFIG]
    tokenizer: str = "byte"           # byte | bpe
    bpe_vocab: int = 4096
    val_percent: float = 2.0
    max_bytes: int | None = None      # cap on training text (hash-ordered subset of files)
    max_val_bytes: int | None = 1_000_000
    vocab_size: int | None = None     # only for .bin data without a tokenizer

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ValueError(f"data kind must be one of {', '.join(DATA_KINDS)}, got {self.kind!r}")
        if self.seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {self.seq_len}")
        if not 0 <= self.seed < 2**64:  # the generator's uint64; numpy's draws refuse negatives only at the first batch
            raise ValueError(f"data seed (--data-seed) must be in [0, 2**64), got {self.seed}")
        if self.gen_device not in ("auto", "cpu") and not self.gen_device.startswith("cuda"):
            raise ValueError(f"gen_device must be auto, cpu, cuda or cuda:N, got {self.gen_device!r}")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``lr * min_lr_ratio``."""

    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0            # max global grad norm; 0 = no clipping

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        # A negative clip norm flips the gradient (ascent); a negative decay grows the weights.
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass
class TrainConfig:
    """One training stage. ``batch_size`` is sequences per micro-batch per rank."""

    out_dir: str = "runs/run"
    model: str | None = None          # preset name; None = "tiny", or the --init checkpoint's shape
    model_overrides: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    init: str | None = None           # checkpoint to transfer from (new embeddings and head)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    steps: int = 1000                 # optimizer steps; see max_tokens
    max_tokens: int = 0               # if > 0, steps = ceil(max_tokens / tokens per step)
    batch_size: int = 8
    grad_accum: int = 1
    eval_every: int = 100             # 0 = only at the end
    eval_batches: int = 8
    ckpt_every: int = 500             # 0 = only at the end
    log_every: int = 10
    seed: int = 0                     # model init seed
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    precision: str = "auto"           # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False
    resume: bool = False
    stop_at: int = 0                  # stop (with a checkpoint) after this step, as if interrupted
    threads: int | None = None        # torch CPU threads
    progress: bool = True

    def total_steps(self, world: int, seq_len: int) -> int:
        """Optimizer steps of the run: ``steps``, or ``max_tokens`` over the tokens of one step."""
        if not self.max_tokens:
            return self.steps
        return math.ceil(self.max_tokens / (self.batch_size * self.grad_accum * world * seq_len))

    def __post_init__(self) -> None:
        # Nested dicts (from_dict, JSON) get the same stray-key check as the top level.
        if isinstance(self.data, dict):
            self.data = DataConfig(**known_fields(DataConfig, self.data))
        if isinstance(self.optim, dict):
            self.optim = OptimConfig(**known_fields(OptimConfig, self.optim))
        if isinstance(self.transfer, dict):
            self.transfer = TransferConfig(**known_fields(TransferConfig, self.transfer))
        for name in ("steps", "batch_size", "grad_accum", "eval_batches", "log_every"):
            if getattr(self, name) < 1 and not (name == "steps" and self.max_tokens > 0):
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_tokens", "eval_every", "ckpt_every", "stop_at"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not -2**63 <= self.seed < 2**64:  # what torch.manual_seed takes
            raise ValueError(f"seed (--seed) must be in [-2**63, 2**64), got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (or unset for torch's default), got {self.threads}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        check_model_overrides(self.model_overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**known_fields(cls, d))
