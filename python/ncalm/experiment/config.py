"""The experiment's configuration: one dataclass tree, from a preset, a TOML file and overrides.

Everything that shapes a result lives here, so ``experiment.json`` in the
output directory pins what was run; resuming checks that it still matches.
"""
from __future__ import annotations

import argparse
import copy
import json
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ncalm.cli.options import parse_count
from ncalm.devices import DEVICE_NAME
from ncalm.train.config import check_model_overrides

ARM_KINDS = ("scratch", "nca", "dyck", "text")
TOKENIZERS = ("byte", "bpe")
PRECISIONS = ("auto", "bf16", "fp32")
# Fields that may change between invocations of one experiment: they choose which
# runs exist or where they run, not what any run computes.
RESUMABLE_CHANGES = ("seeds", "arms", "bands", "device", "threads", "progress", "name")
# The syntax of the list settings, for errors: `--set seeds=0,1` is no list.
_EXAMPLES = {"seeds": "seeds=[0,1,2] for three seeds", "arms": 'arms=["scratch","nca"]', "bands": "bands=[[0.5,1.0]]"}


@dataclass
class Stage:
    """Optimisation of one stage. ``tokens`` is the budget; steps = ceil(tokens / tokens per step)."""

    tokens: int = 1_000_000
    seq_len: int = 256
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 0              # steps; 0 = only at the end (a one-point curve: no speedup)
    eval_batches: int = 8
    ckpt_every: int = 0              # steps; 0 = only at the end

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len


@dataclass
class Language(Stage):
    """The language stage, identical for every arm (data, order, init seed, schedule)."""

    data: str = "stdlib"             # corpus spec (see ncalm.data.corpus)
    tokenizer: str = "byte"
    bpe_vocab: int = 4096
    val_percent: float = 2.0
    max_bytes: int | None = None
    max_val_bytes: int | None = 1_000_000
    bpb_bytes: int = 200_000         # held-out bytes for the final bits per byte; 0 = skip


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seeds: list[int] = field(default_factory=lambda: [0])
    arms: list[str] = field(default_factory=lambda: list(ARM_KINDS))
    model: str = "tiny"              # ncalm.lm.model preset, the same for both stages and all arms
    model_overrides: dict = field(default_factory=dict)
    device: str = "auto"
    # auto: bf16 autocast on CUDA, fp32 on the CPU, resolved once when the experiment starts and
    # kept in experiment.json, so every arm and every resumed stage runs at one precision.
    precision: str = "auto"
    threads: int | None = None       # torch CPU threads (None = torch's default)
    progress: bool = True
    # first stage (every arm but scratch): one budget, one schedule
    prepretrain: Stage = field(default_factory=Stage)
    nca: dict = field(default_factory=dict)          # NCAConfig fields except seq_len and band
    bands: list[list[float]] = field(default_factory=lambda: [[0.5, 1.0]])  # one NCA arm each
    pool_size: int = 0               # NCA rules per epoch (0 = a fresh rule per sequence)
    epoch_sequences: int = 0
    dyck_k: int = 4
    dyck_depth: int = 16
    text: str = "pydoc"              # first-stage natural text: pydoc (built in) or a corpus spec
    text_max_bytes: int | None = None
    text_val_percent: float = 10.0   # the built-in pydoc text has only ~80 documents
    # second stage
    language: Language = field(default_factory=Language)

    def __post_init__(self) -> None:
        # Checked here, not at the first use hours later: a setting from --set or TOML can
        # be any type, and a failed run must not leave an experiment.json behind.
        for name, cls in (("prepretrain", Stage), ("language", Language)):
            value = getattr(self, name)
            if isinstance(value, dict):
                _check_keys(value, cls, f"{name}.")
                setattr(self, name, cls(**value))
            elif not isinstance(value, cls):
                raise ValueError(f"{name} must be a table of settings (e.g. {name}.tokens=...), got {value!r}")
        _check_types(self, "")
        _check_types(self.prepretrain, "prepretrain.")
        _check_types(self.language, "language.")
        bad = [a for a in self.arms if a not in ARM_KINDS]
        if bad or not self.arms:
            raise ValueError(f"arms must be a non-empty list of {', '.join(ARM_KINDS)}; got {self.arms}")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms lists an arm twice: {self.arms}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        for seed in self.seeds:
            if not 0 <= seed < 2**64:  # what the NCA generator takes (numpy and torch take it too)
                raise ValueError(f"seeds (--seeds): each seed must be an integer in [0, 2**64), got {seed}")
        for band in self.bands:
            if len(band) != 2 or not 0 <= band[0] < band[1] <= 2:
                raise ValueError(f"bands: each band must be [lower, upper] with 0 <= lower < upper <= 2, got {band}")
        if "nca" in self.arms and not self.bands:
            raise ValueError("bands: the nca arm needs at least one complexity band")
        for name, stage in (("prepretrain", self.prepretrain), ("language", self.language)):
            for key in ("tokens", "seq_len", "batch_size", "grad_accum", "eval_batches"):
                if getattr(stage, key) < 1:
                    raise ValueError(f"{name}.{key} must be >= 1, got {getattr(stage, key)}")
        for key in ("seq_len", "band"):
            if key in self.nca:
                raise ValueError(f"nca.{key}: set prepretrain.seq_len / bands instead")
        self._check_data()
        self._check_components()

    def _check_data(self) -> None:
        """The data settings the sources would reject at a stage's start.

        Checked for every arm, not only those listed: ``arms`` may grow on a
        resume, and by then experiment.json would pin the bad value.
        """
        if self.pool_size < 0:
            raise ValueError(f"pool_size must be >= 0 (0 = a fresh rule per sequence), got {self.pool_size}")
        if self.epoch_sequences < 0 or self.epoch_sequences < self.pool_size:
            least = f"pool_size={self.pool_size}" if self.pool_size else "0"
            raise ValueError(f"epoch_sequences must be >= {least}, got {self.epoch_sequences}")
        for name in ("dyck_k", "dyck_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, value in (("text_val_percent", self.text_val_percent),
                            ("language.val_percent", self.language.val_percent)):
            if not 0 < value < 100:
                raise ValueError(f"{name} must be in (0, 100), got {value}")
        # 256 byte symbols, the end-of-text token and at least one merge (see BPETokenizer.train).
        if self.language.tokenizer == "bpe" and self.language.bpe_vocab < 258:
            raise ValueError(f"language.bpe_vocab must be >= 258 with tokenizer bpe, got {self.language.bpe_vocab}")

    def _check_components(self) -> None:
        """The settings that the model, NCA generator, tokenizer and device would reject mid-run."""
        from ncalm.nca.config import NCAConfig
        from ncalm.lm.config import PRESETS, ModelConfig, model_config

        if self.model not in PRESETS:
            raise ValueError(f"model must be one of {', '.join(PRESETS)}, got {self.model!r}")
        unknown = sorted(set(self.model_overrides) - {f.name for f in fields(ModelConfig)})
        if unknown:
            raise ValueError(f"unknown model_overrides key(s) {unknown}; known: "
                             f"{', '.join(f.name for f in fields(ModelConfig))}")
        check_model_overrides(self.model_overrides)
        model_config(self.model, **self.model_overrides)
        settable = [f"nca.{f.name}" for f in fields(NCAConfig) if f.name not in ("seq_len", "band")]
        unknown = [f"nca.{key}" for key in sorted(self.nca) if f"nca.{key}" not in settable]
        if unknown:
            raise ValueError(f"unknown NCA setting(s) {', '.join(unknown)}; known: {', '.join(settable)}")
        try:
            for band in self.bands or [None]:
                NCAConfig(**self.nca, seq_len=self.prepretrain.seq_len, band=band)
        except ValueError as exc:
            raise ValueError(f"nca: {exc}") from None
        if self.language.tokenizer not in TOKENIZERS:
            raise ValueError(f"language.tokenizer must be one of {', '.join(TOKENIZERS)}, "
                             f"got {self.language.tokenizer!r}")
        if not DEVICE_NAME.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        _check_keys(d, cls, "")
        return cls(**d)


_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
          str: ("a string", "strings"), dict: ("a table", "tables")}


def _fits(value, tp) -> bool:
    """Whether ``value`` (from TOML or JSON) has the type ``tp`` of a field's annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_fits(v, typing.get_args(tp)[0]) for v in value)
    if tp is type(None):
        return value is None
    if isinstance(value, bool):  # an int to isinstance, but `true` is no token count
        return tp is bool
    if tp is float:
        return isinstance(value, (int, float))  # TOML reads 1 as an int
    return isinstance(value, tp)


def _describe(tp, plural: bool = False) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg, plural) for arg in typing.get_args(tp) if arg is not type(None))
    if origin is list:
        inner = _describe(typing.get_args(tp)[0], plural=True)
        return f"lists of {inner}" if plural else f"a list of {inner}"
    return _WORDS[tp][plural]


def _takes_int(tp) -> bool:
    """Whether the annotation ``tp`` is int or int | None."""
    return tp is int or (typing.get_origin(tp) in (typing.Union, types.UnionType) and int in typing.get_args(tp))


def _count(value) -> int | None:
    """``value`` as an integer if it is one written as a count (100k, 1.5M, 2B, 1e6), else None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 1e6 in TOML is a float
    if not isinstance(value, str):
        return None
    try:
        return parse_count(value)  # the forms the command-line flags take
    except argparse.ArgumentTypeError:
        pass
    try:
        number = float(value)  # "1e6", should parse_count not read it
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _as_declared(name: str, value, tp):
    """``value`` in the form the annotation ``tp`` asks for, where that is unambiguous."""
    if _takes_int(tp) and not isinstance(value, (int, type(None))):
        count = _count(value)
        return value if count is None else count
    # arms=scratch -> ["scratch"]; not seeds: seeds=3 reads as "3 seeds" as often as "seed 3".
    if name != "seeds" and typing.get_origin(tp) is list and _fits(value, typing.get_args(tp)[0]):
        return [value]
    return value


def _check_types(obj, prefix: str) -> None:
    """Raise ValueError for a setting of the wrong type, after reading counts and one-item lists."""
    for name, tp in typing.get_type_hints(type(obj)).items():
        value = _as_declared(name, getattr(obj, name), tp)
        if not _fits(value, tp):
            forms = " or a count such as 100k, 1.5M, 2B or 1e6" if _takes_int(tp) else ""
            example = f" (e.g. {_EXAMPLES[name]})" if name in _EXAMPLES else ""
            raise ValueError(f"{prefix}{name} must be {_describe(tp)}{forms}{example}, got {value!r}")
        setattr(obj, name, value)


def _check_keys(d: dict, cls, prefix: str) -> None:
    known = {f.name: f for f in fields(cls)}
    for key, value in d.items():
        if key not in known:
            raise ValueError(f"unknown experiment setting '{prefix}{key}'; known: {', '.join(known)}")
        sub = {"prepretrain": Stage, "language": Language}.get(key)
        if sub is not None and isinstance(value, dict):
            _check_keys(value, sub, f"{key}.")


def merge(base: dict, over: dict) -> dict:
    """``over`` applied onto ``base``; nested tables merge key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_assignment(text: str) -> dict:
    """``'language.tokens=2e6'`` -> ``{'language': {'tokens': 2000000}}`` (TOML value syntax)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects KEY=VALUE (e.g. language.tokens=2000000), got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: take it as a string
    if isinstance(value, float) and value.is_integer() and "e" in raw.lower():
        value = int(value)  # 2e6 written for a token count
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {path}: not valid TOML ({exc})") from None


def _leaves(d: dict, prefix: str = "") -> dict:
    """Nested tables flattened to dotted names: {'language': {'lr': 0.1}} -> {'language.lr': 0.1}."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def check_same_experiment(saved: dict, current: dict) -> None:
    """Raise ValueError naming every setting by which ``current`` would compute different runs than ``saved``."""
    then, now = _leaves(saved), _leaves(current)
    unset = object()  # a setting one of them lacks (written by another version, or a key of nca)

    def show(value) -> str:
        return "(unset)" if value is unset else json.dumps(value, separators=(",", ":"))

    changed = []
    for key in sorted(set(then) | set(now)):
        old, new = then.get(key, unset), now.get(key, unset)
        if key.split(".")[0] not in RESUMABLE_CHANGES and old != new:
            changed.append(f"{key}: {show(old)} -> {show(new)}")
    if changed:
        raise ValueError(f"the output directory holds an experiment with other settings (there -> here): "
                         f"{', '.join(changed)}; use another --out, or the same settings to resume")
