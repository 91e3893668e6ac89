"""Settings declared once: every field with its default, help text and check, in one dataclass tree.

A config class subclasses :class:`Settings` and declares each field with
:func:`setting` (or :func:`table` for a nested table). Building an instance,
from keyword arguments or from a dict (JSON, TOML, presets, ``--set``),
checks every field's type and range once; errors are :class:`SettingError`
naming the dotted key (``language.optim.lr``). The command-line flags of every
command are made from the same declarations (:func:`add_flags`).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import contextvars
import copy
import dataclasses
import functools
import json
import math
import os
import re
import sys
import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomllib is 3.11+; tomli is the same parser under another name
    import tomli as tomllib

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


class SettingError(ValueError):
    """A setting with a bad value; ``key`` is its dotted name."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}" if key else message)

    def under(self, prefix: str) -> "SettingError":
        return SettingError(f"{prefix}.{self.key}" if self.key else prefix, self.message)


@contextlib.contextmanager
def within(prefix: str):
    """Name the settings checked inside by their full dotted key: code that checks a table's settings as it
    uses them (a tokenizer's files, a device) raises SettingError keyed within that table, and its caller says
    where the table is, e.g. ``with within("data"): build_source(cfg.data)`` makes ``text.tokenizer``
    ``data.text.tokenizer``."""
    try:
        yield
    except SettingError as exc:
        raise exc.under(prefix) from None


def parse_count(text: str) -> int:
    """'100M', '1.5B', '64k', '1e6', '5000' -> int; refuses what is not a whole number >= 1."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]{1,2})?)\s*([kKmMbBgG]?)\s*", text)
    # Decimal, not float: 1.1B is exactly 1100000000, and whether a value is whole is decided exactly.
    value = Decimal(m.group(1)) * _SUFFIX[m.group(2).lower()] if m else None
    if value is None or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"expected a whole count like 5000, 64k, 100M, 1.5B or 1e6, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"count must be at least 1, got {text!r}")
    return int(value)


# --- declaring ---------------------------------------------------------------------------------

def setting(default: Any, help: str, *, check: Callable[[Any], str | None] | None = None,
            choices: tuple | None = None, flags: tuple[str, ...] = (), parse: Callable[[str], Any] | None = None,
            repeat: bool = False, one_item: bool = True, empty: bool = False, tree: type | None = None) -> Any:
    """A field: its default, one line of help, and optionally
    ``check`` (value -> error text or None), ``choices``, command-line ``flags`` (short
    aliases of the dotted option), ``parse`` (how a flag's text becomes the value) and
    ``repeat`` (a list flag given once per item); ``one_item=False`` refuses a plain value for a list,
    ``empty`` lets a list's flag be given with no items (the empty list); ``tree``: the Settings class
    whose (partial) settings a free-form dict holds (a sweep's experiment), put in its layout by
    :func:`canonical` so that layers merge key by key."""
    meta = dict(help=help, check=check, choices=choices, flags=flags, parse=parse, repeat=repeat, one_item=one_item,
                empty=empty, tree=tree)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def same_as(cls: type, name: str, *, help: str | None = None, default: Any = dataclasses.MISSING) -> Any:
    """A field declared like ``cls``'s field ``name``: the same check, flags and, unless ``default=``, default;
    the same help unless ``help=`` says how this command uses it."""
    f = cls.__dataclass_fields__[name]
    metadata = {**f.metadata, "same_as": f"{cls.__name__}.{name}", "help": f.metadata["help"] if help is None else help}
    if default is dataclasses.MISSING:
        return dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def table(cls: type, help: str, **defaults: Any) -> Any:
    """A nested table of settings of class ``cls``; ``defaults`` override the class's own."""
    return dataclasses.field(default_factory=lambda: cls(**copy.deepcopy(defaults)), metadata=dict(help=help))


def at_least(low: float, strict: bool = False) -> Callable[[Any], str | None]:
    """A lower bound (``strict``: above it); infinity is refused too (an infinite rate or size only ends in
    NaN or an error)."""
    def check(v):
        if v is None:
            return None
        if v == math.inf:
            return "must be finite"
        return None if (v > low if strict else v >= low) else f"must be {'>' if strict else '>='} {low}"
    return check


positive = at_least(0, strict=True)


def folder(v: str | None) -> str | None:
    """An output folder's name: not blank (it would write into the current folder). Only the value's form:
    a setting is built with every default and preset, so what is on disk is :func:`output_folder`'s, checked
    on the folder a command is about to make."""
    return None if v is None or v.strip() else "must name a folder"


def _in_the_way(path: Path) -> str | None:
    """What stops ``path`` from being made as a folder: the nearest thing on it that exists must be a folder."""
    for p in (path, *path.parents):
        if p.is_dir():
            return None
        if p.is_symlink() and not p.exists():  # a link to nothing: mkdir fails on it as on a file
            what = f"a broken link (to {os.readlink(p)})"
        elif p.exists():
            what = "a file"
        else:
            continue
        return f"is {what}, not a folder" if p == path else f"is inside {p}, which is {what}, not a folder"
    return None


def output_folder(key: str, value: str | os.PathLike) -> Path:
    """``value``, the output folder setting ``key`` holds, as the Path a command is about to make; refused,
    by ``key``, when blank or when a file or a broken link is in the way (making it would fail, after the
    work). Call it on the value in use, before the work, not in a setting's check."""
    text = os.fspath(value)
    problem = folder(text) or _in_the_way(Path(text))
    if problem:
        raise SettingError(key, f"{problem}, got {text!r}")
    return Path(text)


def in_range(low: float, high: float, *, open_high: bool = False, open_low: bool = False,
             shown: str | None = None):
    """``shown`` writes the range for people, e.g. "[0, 2**64)"."""
    shown = shown or f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"

    def check(v):
        if v is None:
            return None
        ok = (v > low if open_low else v >= low) and (v < high if open_high else v <= high)
        return None if ok else f"must be in {shown}"
    return check


# --- types -------------------------------------------------------------------------------------

_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
          str: ("a string", "strings"), dict: ("a table", "tables")}


def _args(tp) -> tuple:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _fits(value, tp) -> bool:
    """Whether ``value`` (from Python, TOML or JSON) has the type ``tp`` of a field's annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(tp))
    if origin in (list, tuple):
        inner = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and inner[-1] is not Ellipsis:
            return len(value) == len(inner) and all(_fits(v, t) for v, t in zip(value, inner))
        return all(_fits(v, inner[0]) for v in value)
    if tp is type(None):
        return value is None
    if isinstance(value, bool):  # an int to isinstance, but `true` is no token count
        return tp is bool
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(value, tp)


def _describe(tp, plural: bool = False) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        inner = typing.get_args(tp)
        if origin is tuple and inner[-1] is not Ellipsis:
            return f"a pair of {_describe(inner[0], True)}" if len(inner) == 2 else f"{len(inner)} values"
        return f"lists of {_describe(inner[0], True)}" if plural else f"a list of {_describe(inner[0], True)}"
    return _WORDS[tp][plural]


def _coerce(value, tp, one_item: bool = True):
    """``value`` in the form ``tp`` asks for where that is unambiguous: numpy scalars as Python
    numbers, counts written as text (100k, 2e6) or whole floats for integers, one item for a list,
    "none" for an optional setting's unset, text for a string (--set name=1 reads 1 as TOML)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # a numpy scalar, e.g. from a sweep's arange
    want = _args(tp)
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in want:
        return None
    if str in want and isinstance(value, (int, float, datetime.date)) and not isinstance(value, bool):
        return str(value)
    if float in want and isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    if int in want and not isinstance(value, (bool, int)) and value is not None:
        if isinstance(value, float) and value.is_integer() and float not in want:
            return int(value)
        if isinstance(value, str):
            try:
                return parse_count(value)
            except argparse.ArgumentTypeError:
                return value
    if float in want and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    origin = typing.get_origin(tp)
    if origin is list and isinstance(value, tuple) and not (one_item and _fits(value, typing.get_args(tp)[0])):
        return list(value)  # unless it is one item: --set bands=0.5,1.0, read as --bands reads it
    for arg in want:  # a pair written as a list (TOML, JSON): --set nca.band=[0.3,0.4]
        if typing.get_origin(arg) is tuple and isinstance(value, list) and len(value) == len(typing.get_args(arg)):
            return tuple(_coerce(v, t) for v, t in zip(value, typing.get_args(arg)))
    if one_item and origin is list and _fits(value, typing.get_args(tp)[0]) and not _fits(value, tp):
        return [_coerce(value, typing.get_args(tp)[0])]  # one item: arms = "scratch", bands = [0.3, 0.5]
    if origin is list and isinstance(value, list):
        return [_coerce(v, typing.get_args(tp)[0]) for v in value]
    return value


def _is_table(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, Settings)


# --- building and checking ---------------------------------------------------------------------

class Settings:
    """Base of every config dataclass: checks each field once, at construction.

    Subclasses may define ``validate(self)`` for rules across fields (raise
    SettingError with the field's name), ``RENAMED`` (old dotted key -> new one,
    for files and flags written before a rename) and ``SHORTHAND`` (the field that
    a plain value given for the whole table sets, e.g. ``model = "small"``). With ``DASHED``, a field
    declared without ``flags`` has the option ``--field-name`` (a command's own settings).
    """

    RENAMED: typing.ClassVar[dict[str, str]] = {}
    SHORTHAND: typing.ClassVar[Any] = None  # a field name, or a function of the plain value giving the table
    DASHED: typing.ClassVar[bool] = False

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            tp, value = hints[f.name], getattr(self, f.name)
            if _is_table(tp):
                if not isinstance(value, tp):
                    value = canonical(tp, value)
                    if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
                        # A partial table keeps the defaults this field declares, not only the class's.
                        value = merge(f.default_factory().to_dict(), value)
                    value = tp.from_dict(value, f.name)
            else:
                if isinstance(value, str) and f.metadata.get("parse"):  # --set nca.band=0.3,0.4 as --band takes it
                    try:
                        value = f.metadata["parse"](value)
                    except argparse.ArgumentTypeError as exc:
                        raise SettingError(f.name, str(exc)) from None
                value = _coerce(value, tp, f.metadata.get("one_item", True))
                if not _fits(value, tp):
                    forms = " or a count such as 100k, 1.5M, 2B or 1e6" if int in _args(tp) else ""
                    raise SettingError(f.name, f"must be {_describe(tp)}{forms}, got {value!r}")
                choices, check = f.metadata.get("choices"), f.metadata.get("check")
                if choices and value not in choices:
                    allowed = ", ".join(str(c) for c in choices if c is not None) + (" or unset" * (None in choices))
                    raise SettingError(f.name, f"must be one of {allowed}, got {value!r}")
                problem = check(value) if check else None
                if problem:
                    raise SettingError(f.name, f"{problem}, got {value!r}")
            object.__setattr__(self, f.name, value)  # frozen dataclasses too
        self.validate()

    def validate(self) -> None:
        """Rules across fields; the fields are checked one by one before this runs."""

    @classmethod
    def from_dict(cls, d: Any, prefix: str = "") -> Any:
        """An instance from a nested dict; unknown keys and bad values name their dotted key."""
        if not isinstance(d, dict) and cls.SHORTHAND is None:
            raise SettingError(prefix, f"must be a table of settings, got {d!r}")
        d = canonical(cls, d, prefix)
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                near = [_dotted(prefix, k) for k in _keys(cls) if k.rsplit(".", 1)[-1] == key]
                raise SettingError(_dotted(prefix, key), f"unknown setting; known: {', '.join(sorted(known))}"
                                   + (f"; did you mean {' or '.join(near)}?" if near else ""))
        try:
            return cls(**d)
        except SettingError as exc:
            raise exc.under(prefix) if prefix else exc
        except TypeError as exc:  # a missing required field
            raise SettingError(prefix, str(exc)) from None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples become lists, as in JSON files

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


_warned: set[str] = set()
_quiet = contextvars.ContextVar("quiet", default=False)


@contextlib.contextmanager
def quietly():
    """Read settings written by an older version (checkpoints, experiment.json) without rename notes."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def canonical(cls: type, d: Any, prefix: str = "") -> Any:
    """``d`` in today's layout for ``cls``: renamed keys moved (``RENAMED``), plain values for a
    table expanded (``SHORTHAND``), all the way down; so that layers merge key by key. ``prefix``:
    the dotted key of ``d``'s table, for the notes and errors."""
    d = _undotted(cls, d, prefix)
    given, d = d, _whole(cls, d)
    if not isinstance(d, dict):
        return d
    if cls.RENAMED:
        d = copy.deepcopy(d)
    for old, new in cls.RENAMED.items():  # moved to the new dotted place, said once
        *path, last = old.split(".")
        node = _at(d, path)
        if isinstance(node, dict) and last in node:
            value = node.pop(last)
            if _at(given, new.split(".")) is not _ABSENT:  # ``given``: the input, before whole tables became dicts
                raise SettingError(_dotted(prefix, old),
                                   f"is the old name of '{_dotted(prefix, new)}', which is given too: keep one of them")
            note_renamed(_dotted(prefix, old), _dotted(prefix, new))
            d = merge(d, nested(new, value))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for k, v in d.items():
        if k in hints and _is_table(hints[k]):
            v = canonical(hints[k], v, _dotted(prefix, k))
            if not isinstance(v, dict):  # named now: merged with a later layer's table, it would vanish
                raise SettingError(_dotted(prefix, k), f"must be a table of settings, got {v!r}")
        elif k in fields and fields[k].metadata.get("tree") and isinstance(v, dict):
            # Another tree's settings in a free-form dict: its shorthands too ({model = "small"} then
            # {model.overrides = ...} must give a small model with the override, not a fresh table).
            v = canonical(fields[k].metadata["tree"], v, _dotted(prefix, k))
        out[k] = v
    return out


def _undotted(cls: type, d: Any, prefix: str) -> Any:
    """``d`` with each dotted key (TOML's quoted ``"run.tokens" = 5``) as the nested key it names, as --set
    reads one, merged with the tables given whole (shorthands expanded); the same setting given twice is refused."""
    if not isinstance(d, dict) or not any("." in k for k in d):
        return d
    out = _whole(cls, {k: v for k, v in d.items() if "." not in k})
    for key in (k for k in d if "." in k):
        new = _whole(cls, nested(key, d[key]))
        if twice := set(leaves(out)) & set(leaves(new)):
            raise SettingError(_dotted(prefix, min(twice)), "is given twice: keep one")
        # A table wins over a plain value in its place, either way round, so that the value's own check
        # names the sub-keys given (run.tokens: must be an integer ..., got {'x': 1}), as with --set.
        out = merge(new, out) if isinstance(_at(out, key.split(".")), dict) else merge(out, new)
    return out


def _keys(cls: type, prefix: str = "") -> list[str]:
    """Every setting of ``cls``, by its dotted key."""
    hints = typing.get_type_hints(cls)
    return [key for f in dataclasses.fields(cls) for key in (
        _keys(hints[f.name], f"{prefix}{f.name}.") if _is_table(hints[f.name]) else [prefix + f.name])]


def _dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


_ABSENT = object()


def _at(d: Any, path: list[str]) -> Any:
    """The value at ``path`` in nested dicts ``d``, or _ABSENT."""
    for part in path:
        d = d[part] if isinstance(d, dict) and part in d else _ABSENT
    return d


def _whole(cls: type, d: Any) -> Any:
    """``d`` with every table given whole (an instance, or a plain value for its ``SHORTHAND``) as a dict,
    all the way down: a renamed key moving into such a table (``init`` beside ``model = "small"``) then
    merges with it instead of replacing it."""
    if isinstance(d, Settings):
        return d.to_dict()
    if not isinstance(d, dict) and cls.SHORTHAND:  # a plain value standing for the whole table
        return cls.SHORTHAND(d) if callable(cls.SHORTHAND) else nested(cls.SHORTHAND, d)
    if not isinstance(d, dict):
        return d
    hints = typing.get_type_hints(cls)
    return {k: _whole(hints[k], v) if k in hints and _is_table(hints[k]) else v for k, v in d.items()}


def note_renamed(old: str, new: str) -> None:
    """Say once (unless reading quietly) that setting ``old`` is now ``new``."""
    if old not in _warned and not _quiet.get():
        _warned.add(old)
        print(f"note: setting '{old}' is now '{new}'", file=sys.stderr)


# --- dicts: merging, dotted keys, files ---------------------------------------------------------

def nested(key: str, value: Any) -> dict:
    """``nested('a.b', 1) == {'a': {'b': 1}}``."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def merge(base: dict, over: dict) -> dict:
    """``over`` applied onto ``base``; nested tables merge key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def leaves(d: dict, prefix: str = "") -> dict:
    """Nested tables flattened to dotted names: {'language': {'lr': 0.1}} -> {'language.lr': 0.1}."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def parse_value(raw: str) -> Any:
    """A value as written on the command line: TOML syntax (2e6, [0, 1], "x", true), else the bare word."""
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()
    if isinstance(value, float) and value.is_integer() and "e" in raw.lower():
        return int(value)  # 2e6 written for a token count
    return value


def parse_assignment(text: str) -> dict:
    """``'language.run.tokens=2e6'`` -> ``{'language': {'run': {'tokens': 2000000}}}``."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects KEY=VALUE with a dotted KEY, got {text!r}")
    return nested(key.strip(), parse_value(raw))


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {path}: not valid TOML ({exc})") from None


def differences(saved: dict, current: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """Every dotted setting whose value differs, as ``key: old -> new``; keys under ``ignore`` are skipped."""
    then, now = leaves(saved), leaves(current)

    def show(v) -> str:
        return "(unset)" if v is _ABSENT else json.dumps(v, separators=(",", ":"))

    out = []
    for key in sorted(set(then) | set(now)):
        old, new = then.get(key, _ABSENT), now.get(key, _ABSENT)
        if old != new and not any(key == p or key.startswith(p + ".") for p in ignore):
            out.append(f"{key}: {show(old)} -> {show(new)}")
    return out


def check_same(saved: dict, current: dict, may_change: tuple[str, ...], what: str) -> None:
    """Raise ValueError naming every setting by which ``current`` would compute something else than
    ``saved`` (the resolved run spec of a checkpoint or experiment); keys under ``may_change`` may differ."""
    changed = differences(saved, current, ignore=may_change)
    if changed:
        raise ValueError(f"{what} was made with other settings (there -> here): {', '.join(changed)}; "
                         f"use the same settings to resume, or another output directory")


# --- command-line flags ------------------------------------------------------------------------

def count(text: str) -> int:
    """An integer flag's value: 5000, -3, or a count such as 64k, 1.5M, 1e6."""
    return parse_count(text) if re.search(r"[kKmMbBgGeE.]", text) else int(text)


def boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _flag_type(f: dataclasses.Field, tp) -> Callable[[str], Any]:
    item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
    if f.metadata.get("parse"):
        parse = f.metadata["parse"]
    elif item is dict:
        parse = parse_value  # an inline TOML table: {mlp_hidden = 8192}
    elif int in _args(item) and float not in _args(item):
        parse = count
    elif bool in _args(item) and str in _args(item):
        def parse(text: str):  # e.g. run.compile: true, false or auto
            return boolean(text) if text.lower() in ("true", "false") else text
    else:
        parse = {float: float, bool: boolean}.get(next((t for t in _args(item) if t is not type(None)), str), str)
    if type(None) not in _args(item):
        return parse

    def optional(text: str):  # "none": back to unset
        return None if text.lower() == "none" else parse(text)
    optional.__name__ = parse.__name__
    return optional


def show_value(value: Any) -> str:
    """A default as a user would type it: a pair as LOWER,UPPER, a list as its items."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, list):
        return " ".join(show_value(tuple(v) if isinstance(v, list) else v) for v in value) or "none"
    return str(value)


def add_flags(parser: argparse.ArgumentParser, cls: type, defaults: Any, prefix: str = "",
              only: tuple[str, ...] | None = None, skip: tuple[str, ...] = (),
              groups: dict[str, str] | bool | None = None, group: Any = None) -> None:
    """Add a ``--dotted.key`` option for every leaf of ``cls`` (under ``prefix``), with the field's
    short flags as aliases. Options default to nothing: :func:`flag_values` collects what was given.

    ``defaults`` is the tree whose values --help shows; ``only`` limits the options to these
    dotted keys (and the tables under them), ``skip`` leaves these out; ``groups`` titles an
    option group per table (True: each table's own help).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp, value = prefix + f.name, hints[f.name], getattr(defaults, f.name)
        if only is not None and not any(key == o or key.startswith(o + ".") or o.startswith(key + ".")
                                        for o in only) or key in skip:
            continue
        if _is_table(tp):
            title = f.metadata["help"] if groups is True else (groups or {}).get(key)
            add_flags(parser, tp, value, key + ".", only, skip, groups,
                      parser.add_argument_group(title) if title else group)
            continue
        g = group or parser
        aliases = list(f.metadata.get("flags", ()))
        if not aliases and cls.DASHED:
            aliases = [f"--{f.name.replace('_', '-')}"]
        # The dotted name, where it says more than an alias: --optim.lr beside --lr, not --shard_tokens.
        names = aliases if aliases and "." not in key else [*aliases, f"--{key}"]
        help_text = f.metadata.get("help", "")
        # A switch says what it does; a bool without switches takes a VALUE and shows its default like the rest.
        # An empty default is not shown: the help says what empty means, or that the setting is required.
        if value not in (None, "") and (tp is not bool or not aliases) and "default" not in help_text:
            help_text += f" (default: {show_value(value)})"
        help_text = help_text.replace("%", "%%")
        if bool in _args(tp):  # the aliases are switches; the dotted name takes a value (true, false, auto...)
            for name in aliases:
                g.add_argument(name, dest="@" + key, default=argparse.SUPPRESS, action="store_const",
                               const=not name.startswith("--no-"), help=help_text if name == names[0] else
                               argparse.SUPPRESS)
            if f"--{key}" in names and f"--{key}" not in aliases:
                g.add_argument(f"--{key}", dest="@" + key, default=argparse.SUPPRESS, type=_flag_type(f, tp),
                               metavar="VALUE", help=argparse.SUPPRESS if aliases else help_text)
            continue
        kwargs = dict(dest="@" + key, default=argparse.SUPPRESS, help=help_text, type=_flag_type(f, tp),
                      metavar=f.name.upper().replace("-", "_"))
        if f.metadata.get("choices") and None not in f.metadata["choices"]:  # argparse would list None: the
            kwargs["choices"] = f.metadata["choices"]  # setting's own check refuses, and says "or unset"
        if typing.get_origin(tp) is list:
            kwargs.update(action="append") if f.metadata.get("repeat") else \
                kwargs.update(nargs="*" if f.metadata.get("empty") else "+")
        g.add_argument(*names, **kwargs)


def flag_values(args: argparse.Namespace) -> dict:
    """The nested dict of the tree options that were given on the command line (add_flags' "@a.b" dests)."""
    given = (nested(key[1:], value) for key, value in vars(args).items() if key.startswith("@"))
    return functools.reduce(merge, given, {})


def resolve(cls: type, base: dict, config: str | None = None, assignments: list[str] = (),
            flags: dict | None = None) -> Any:
    """The tree that ``base`` (a preset), a TOML file, ``--set`` assignments and flags describe, in that order."""
    layers = [base, load_toml(config) if config else {}, *map(parse_assignment, assignments), flags or {}]
    return cls.from_dict(functools.reduce(merge, (canonical(cls, layer) for layer in layers), {}))
