"""What every command built on a settings tree takes besides the tree's own flags: --config and --set."""
from __future__ import annotations

import argparse


def add_tree_arguments(p: argparse.ArgumentParser, what: str, example: str = "optim.lr=3e-4") -> None:
    """--config FILE and --set KEY=VALUE; the command resolves them with ncalm.settings.resolve."""
    p.add_argument("--config", default=None, help=f"TOML file of {what} settings (keys as --set takes them; "
                                                   "default: none)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one setting by its dotted key, e.g. --set {example} (repeatable; default: none)")
