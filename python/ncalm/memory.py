"""Refuse an allocation that cannot fit before making it, naming the setting that asks for it."""
from __future__ import annotations

import contextlib


def available_bytes() -> int | None:
    """Memory the kernel can give without swapping (MemAvailable), or None where unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def check_fits(nbytes: int, what: str) -> None:
    """ValueError saying what `what` would need when `nbytes` exceed the memory available now."""
    free = available_bytes()
    if free is not None and nbytes > free:
        raise ValueError(f"{what}: needs {nbytes / 2**30:,.1f} GiB of memory, more than the "
                         f"{free / 2**30:,.1f} GiB available")
