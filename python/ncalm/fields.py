"""Building config dataclasses from dicts (JSON, checkpoints) with clear errors."""
from __future__ import annotations

from dataclasses import fields
from typing import Any


def known_fields(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """d itself, after checking every key is a field of dataclass cls (ValueError naming the strays)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    return d
