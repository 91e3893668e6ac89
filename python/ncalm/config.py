"""NCAConfig: the generator's settings, validated up front (docs/nca-semantics.md)."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from ncalm.fields import known_fields


@dataclass(frozen=True)
class NCAConfig:
    """Settings of an NCA token stream. Defaults are the paper's.

    Args:
        grid: side of the square grid (cells); a torus.
        colors: number of cell states C.
        patch: side p of the square patches that become one token each.
        burn_in: steps run before the first recorded frame.
        dT: steps between recorded frames.
        temperature: softmax temperature of the step; 0 means argmax.
        identity_bias: added to the current colour's logit before sampling.
        seq_len: tokens per training sequence (inputs; targets are shifted by one).
        band: (lower, upper) gzip-ratio band a rule must fall strictly inside,
            or None to keep every rule.
        colour_wrap: pad conv1's colour axis cyclically (the published
            distribution); False gives the "clean" C-channel variant.
        score_frames: frames of the scoring simulation fed to gzip.
        max_attempts: candidates tried per sequence before giving up on the band.
    """

    grid: int = 12
    colors: int = 10
    patch: int = 2
    burn_in: int = 10
    dT: int = 1
    temperature: float = 1e-4
    identity_bias: float = 0.0
    seq_len: int = 1024
    band: tuple[float, float] | None = None
    colour_wrap: bool = True
    score_frames: int = 10
    max_attempts: int = 1 << 16

    def __post_init__(self) -> None:
        # numpy scalars (from a sweep's arange, say) become Python numbers, so that the
        # checks below accept them and to_dict stays JSON.
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, numbers.Integral) and not isinstance(v, (bool, int)):
                object.__setattr__(self, f.name, int(v))
            elif isinstance(v, numbers.Real) and not isinstance(v, (numbers.Integral, float)):
                object.__setattr__(self, f.name, float(v))
        if self.band is not None:
            try:
                lo, hi = (float(x) for x in self.band)
            except (TypeError, ValueError):
                raise ValueError(f"band={self.band!r} must be a (lower, upper) pair of numbers or None") from None
            object.__setattr__(self, "band", (lo, hi))
        _validate(self)

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

    def replace(self, **changes: Any) -> "NCAConfig":
        return NCAConfig(**{**asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["band"] = list(self.band) if self.band is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NCAConfig":
        return cls(**known_fields(cls, d))  # __post_init__ turns a JSON band list into a tuple

    def core_dict(self) -> dict[str, Any]:
        """The form ncalm._core takes."""
        return {
            "height": self.grid, "width": self.grid, "colors": self.colors, "patch": self.patch,
            "burn_in": self.burn_in, "dT": self.dT, "temperature": self.temperature,
            "identity_bias": self.identity_bias, "seq_len": self.seq_len, "band": self.band,
            "colour_wrap": self.colour_wrap, "score_frames": self.score_frames,
            "max_attempts": self.max_attempts,
        }


FLOAT32_MAX = 3.4028234663852886e38
MIN_TEMPERATURE = 1e-30  # also in ncacore/src/config.cpp


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an integer in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} is out of range: allowed {lo} <= {name} <= {hi}")


def _validate(c: NCAConfig) -> None:
    _check_int("grid", c.grid, 1, 4096)
    _check_int("colors", c.colors, 2, 256)
    _check_int("patch", c.patch, 1, 64)
    _check_int("burn_in", c.burn_in, 0, 1 << 20)
    _check_int("dT", c.dT, 1, 1 << 20)
    _check_int("seq_len", c.seq_len, 1, 1 << 26)
    _check_int("score_frames", c.score_frames, 1, 1 << 16)
    _check_int("max_attempts", c.max_attempts, 1, 1 << 16)
    if c.grid % c.patch:
        raise ValueError(f"grid={c.grid} is not a multiple of patch={c.patch}")
    if c.patch_vocab + 2 > 2**31:
        raise ValueError(
            f"vocabulary colors**(patch*patch) + 2 = {c.colors}**{c.patch * c.patch} + 2 exceeds 2**31; "
            "use fewer colors or a smaller patch"
        )
    for name in ("temperature", "identity_bias"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}={v!r} must be a finite number")
        if abs(v) > FLOAT32_MAX:
            raise ValueError(f"{name}={v!r} does not fit the float32 the generator computes in")
    if c.temperature < 0:
        raise ValueError(f"temperature={c.temperature} must be >= 0 (0 means argmax)")
    if 0 < c.temperature < MIN_TEMPERATURE:
        raise ValueError(f"temperature={c.temperature!r} is below {MIN_TEMPERATURE:g}: logits / temperature would "
                         f"overflow float32 and ties would go to the lowest colour; use 0 for argmax")
    if c.band is not None:
        lo, hi = c.band
        if not (0.0 <= lo <= 2.0 and 0.0 <= hi <= 2.0) or not lo < hi:
            raise ValueError(f"band=({lo}, {hi}) is invalid: need 0 <= lower < upper <= 2 (gzip ratios)")
