"""What every command built on a settings tree takes besides the tree's own flags: --config and --set."""
from __future__ import annotations

import argparse
from typing import Any

from ncalm.settings import add_flags, flag_values, resolve


def add_tree_arguments(p: argparse.ArgumentParser, what: str, example: str = "optim.lr=3e-4") -> None:
    """--config FILE and --set KEY=VALUE; the command resolves them with ncalm.settings.resolve."""
    p.add_argument("--config", default=None, help=f"TOML file of {what} settings (keys as --set takes them; "
                                                   "default: none)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one setting by its dotted key, e.g. --set {example} (repeatable; default: none)")


def add_tree(p: argparse.ArgumentParser, cls: type, defaults: Any, what: str, example: str = "optim.lr=3e-4",
             **flags: Any) -> None:
    """--config, --set and the options of ``cls``'s settings (``flags``: add_flags' only, skip, groups...)."""
    add_tree_arguments(p, what, example)
    add_flags(p, cls, defaults, **flags)


def tree_config(cls: type, args: argparse.Namespace, base: dict | None = None) -> Any:
    """The ``cls`` tree that ``base`` (a preset), --config, --set and the flags describe."""
    return resolve(cls, base or {}, args.config, args.assignments, flag_values(args))
