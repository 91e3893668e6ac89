"""Command-line options shared by every command that builds an NCAConfig."""
from __future__ import annotations

import argparse
import re
from decimal import Decimal

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_band(text: str) -> tuple[float, float] | None:
    """'LOWER,UPPER' -> (lower, upper); 'none' / 'off' -> None (no filter)."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"band must be LOWER,UPPER (e.g. 0.5,1.0) or none, got {text!r}") from None
    return (lo, hi)


def parse_count(text: str) -> int:
    """'100M', '1.5B', '64k', '1e6', '5000' -> int; refuses what is not a whole number ('1.5', '1.2345k')."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]{1,2})?)\s*([kKmMbBgG]?)\s*", text)
    # Decimal, not float: 1.1B is exactly 1100000000, and whether a value is whole is decided exactly.
    value = Decimal(m.group(1)) * _SUFFIX[m.group(2).lower()] if m else None
    if value is None or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"expected a whole count like 5000, 64k, 100M, 1.5B or 1e6, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"count must be at least 1, got {text!r}")
    return int(value)


def add_nca_arguments(p: argparse.ArgumentParser, band: tuple[float, float] | None = (0.5, 1.0),
                      title: str = "NCA config (defaults: the paper's)", seq_len: bool = True):
    """The NCAConfig fields as options; defaults are the paper's. Returns the option group.

    seq_len=False leaves --seq-len to the caller (the trainers own it).
    """
    g = p.add_argument_group(title)
    g.add_argument("--grid", type=int, default=12, help="grid side in cells; a multiple of --patch")
    g.add_argument("--colors", type=int, default=10, help="cell states C (2..256)")
    g.add_argument("--patch", type=int, default=2, help="patch side p: one token per p x p cells, vocab C**(p*p)+2")
    g.add_argument("--burn-in", type=int, default=10, help="steps before the first recorded frame")
    g.add_argument("--dt", type=int, default=1, help="steps between recorded frames")
    g.add_argument("--temperature", type=float, default=1e-4, help="step sampling temperature; 0 = argmax")
    g.add_argument("--identity-bias", type=float, default=0.0, help="logit bonus for a cell keeping its colour")
    if seq_len:
        g.add_argument("--seq-len", type=int, default=1024, help="tokens per training sequence")
    g.add_argument("--band", type=parse_band, default=band,
                   help="gzip complexity band LOWER,UPPER a rule must fall strictly inside "
                        "(paper: 0.5,1.0 for text/math, about 0.3,0.4 for code; fewer colours "
                        "need a lower band), or none")
    return g


def nca_fields(args: argparse.Namespace) -> dict:
    """The NCAConfig fields add_nca_arguments sets, but for seq_len (which trainers own)."""
    return dict(grid=args.grid, colors=args.colors, patch=args.patch, burn_in=args.burn_in, dT=args.dt,
                temperature=args.temperature, identity_bias=args.identity_bias, band=args.band)


def nca_config(args: argparse.Namespace):
    """NCAConfig from add_nca_arguments' options (raises ValueError on bad values)."""
    from ncalm.nca.config import NCAConfig

    return NCAConfig(**nca_fields(args), seq_len=args.seq_len)
