"""What every command built on a settings tree takes besides the tree's own flags: --config and --set."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ncalm.settings import Settings, add_flags, flag_values, resolve


def _check_example(cls: type, example: str) -> None:
    """The --set example in --help is what users copy: its key must be a setting of the command's tree."""
    parts = example.split("=")[0].split(".")
    for i, part in enumerate(parts):
        if part not in {f.name for f in dataclasses.fields(cls)}:
            raise ValueError(f"--set example {example!r}: {cls.__name__} has no setting {part!r}")
        cls = typing.get_type_hints(cls)[part]
        if not (isinstance(cls, type) and issubclass(cls, Settings)):
            # A plain setting ends the key; a free-form table (a sweep's experiment) takes any key below it.
            if i < len(parts) - 1 and dict not in (cls, typing.get_origin(cls)):
                raise ValueError(f"--set example {example!r}: {part!r} is a setting, not a table")
            return


def add_tree_arguments(p: argparse.ArgumentParser, cls: type, what: str, example: str) -> None:
    """--config FILE and --set KEY=VALUE (``example``: a KEY=VALUE of ``cls``); the command resolves them
    with ncalm.settings.resolve."""
    _check_example(cls, example)
    p.add_argument("--config", default=None, help=f"TOML file of {what} settings (keys as --set takes them; "
                                                   "default: none)")
    def assignment(text: str) -> str:  # refused here, where the command's own example is known
        key, sep, _ = text.partition("=")
        if not (sep and key.strip()):
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. {example}, got {text!r}")
        return text

    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE", type=assignment,
                   help=f"override one setting by its dotted key, e.g. --set {example} (repeatable; default: none)")


def add_tree(p: argparse.ArgumentParser, cls: type, defaults: Any, what: str, example: str,
             **flags: Any) -> None:
    """--config, --set and the options of ``cls``'s settings (``flags``: add_flags' only, skip, groups...)."""
    add_tree_arguments(p, cls, what, example)
    add_flags(p, cls, defaults, **flags)


def tree_config(cls: type, args: argparse.Namespace, base: dict | None = None) -> Any:
    """The ``cls`` tree that ``base`` (a preset), --config, --set and the flags describe."""
    return resolve(cls, base or {}, args.config, args.assignments, flag_values(args))
