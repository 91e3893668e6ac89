"""NCAConfig: the generator's settings (defaults are the paper's; docs/nca-semantics.md).

Each field is declared here once; its range is checked once, by the compiled
core, when the config is built (``_core.Config``), and every generator call
passes that checked object on.
"""
from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass, fields
from typing import Any

from ncalm import _core
from ncalm.settings import Settings, SettingError, in_range, setting

# The paper's complexity band (text and math): the default of every command's NCA table, though not of
# NCAConfig itself, whose default is no filter.
PAPER_BAND = (0.5, 1.0)
# The generator's seeds (and so every data seed and test-rule seed) are unsigned 64-bit.
check_seed = in_range(0, 2**64, open_high=True, shown="[0, 2**64)")


def parse_band(text: str) -> tuple[float, float] | None:
    """'LOWER,UPPER' -> (lower, upper); 'none' / 'off' -> None (no filter)."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"band must be LOWER,UPPER (e.g. 0.5,1.0) or none, got {text!r}") from None
    return (lo, hi)


@dataclass(frozen=True)
class NCAConfig(Settings):
    """Settings of an NCA token stream. Defaults are the paper's."""

    grid: int = setting(12, "grid side in cells (a torus); a multiple of patch", flags=("--grid",))
    colors: int = setting(10, "cell states C (2..256)", flags=("--colors",))
    patch: int = setting(2, "patch side p: one token per p x p cells, vocabulary C**(p*p)+2", flags=("--patch",))
    burn_in: int = setting(10, "steps before the first recorded frame", flags=("--burn-in",))
    dT: int = setting(1, "steps between recorded frames", flags=("--dt",))
    temperature: float = setting(1e-4, "step sampling temperature; 0 = argmax", flags=("--temperature",))
    identity_bias: float = setting(0.0, "logit bonus for a cell keeping its colour", flags=("--identity-bias",))
    seq_len: int = setting(1024, "tokens per sequence (inputs; targets are shifted by one)", flags=("--seq-len",))
    band: tuple[float, float] | None = setting(
        None, "gzip complexity band LOWER,UPPER a rule must fall strictly inside (paper: 0.5,1.0 for "
              "text/math, about 0.3,0.4 for code; fewer colours need a lower band), or none",
        flags=("--band",), parse=parse_band)
    colour_wrap: bool = setting(True, "pad conv1's colour axis cyclically (the published distribution); "
                                      "false gives the clean C-channel variant")
    score_frames: int = setting(10, "frames of the scoring simulation fed to gzip")
    max_attempts: int = setting(1 << 16, "candidate rules tried per sequence before giving up on the band")

    def validate(self) -> None:
        for f in fields(self):  # the core takes 32-bit integers: a larger one is refused by name, not cast
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and not -2**31 <= value < 2**31:
                raise SettingError(f.name, f"{value} is out of range (the core takes 32-bit integers)")
        try:
            self.core  # built, and so checked by the core, once
        except (ValueError, TypeError) as exc:  # "colors=1 is out of range: ...": keyed by the setting it names
            name, said, rest = str(exc).partition("=")
            raise (SettingError(name, rest) if said and name in {f.name for f in fields(self)}
                   else SettingError("", str(exc))) from None

    @functools.cached_property
    def core(self) -> "_core.Config":
        """This config as the core's checked ``_core.Config``, which every generator call takes."""
        return _core.Config(self.core_dict())

    def __getstate__(self) -> dict:
        # The core's object does not pickle (DataLoader workers under spawn, deepcopy): rebuilt on use.
        return {k: v for k, v in self.__dict__.items() if k != "core"}

    # Derived sizes (docs/nca-semantics.md "Tokens").
    @property
    def patch_vocab(self) -> int:
        return self.colors ** (self.patch * self.patch)

    @property
    def vocab_size(self) -> int:
        return self.patch_vocab + 2

    @property
    def start_token(self) -> int:
        return self.patch_vocab

    @property
    def end_token(self) -> int:
        return self.patch_vocab + 1

    @property
    def patches_per_frame(self) -> int:
        return (self.grid // self.patch) ** 2

    @property
    def frame_len(self) -> int:
        return self.patches_per_frame + 2

    @property
    def frames_per_sequence(self) -> int:
        return math.ceil((self.seq_len + 1) / self.frame_len)

    def core_dict(self) -> dict[str, Any]:
        """The form ncalm._core.Config takes: these fields, the square grid as its height and width."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["height"] = d["width"] = d.pop("grid")
        return d
