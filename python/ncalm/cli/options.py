"""Options several commands share: the NCA config's flags, and --config/--set for any settings tree."""
from __future__ import annotations

import argparse

from ncalm.nca.config import NCAConfig
from ncalm.settings import add_flags, flag_values, merge

PAPER_BAND = (0.5, 1.0)


def add_nca_arguments(p: argparse.ArgumentParser, band: tuple[float, float] | None = PAPER_BAND,
                      title: str = "NCA config (defaults: the paper's)", skip: tuple[str, ...] = ()) -> None:
    """NCAConfig's fields as options (--grid, --nca.grid, ...); defaults are the paper's."""
    add_flags(p, NCAConfig, NCAConfig(band=band), prefix="nca.", skip=skip, group=p.add_argument_group(title))
    p.set_defaults(_nca_band=band)


def nca_config(args: argparse.Namespace) -> NCAConfig:
    """The NCAConfig that add_nca_arguments' options describe (raises SettingError on bad values)."""
    given = flag_values(args).get("nca", {})
    return NCAConfig.from_dict(merge(NCAConfig(band=args._nca_band).to_dict(), given))


def add_tree_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--config FILE and --set KEY=VALUE, which every command built on a settings tree takes."""
    p.add_argument("--config", default=None, help=f"TOML file of {what} settings (keys as in its saved config; "
                                                   "default: none)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting by its dotted key, e.g. --set optim.lr=3e-4 (repeatable; "
                        "default: none)")
