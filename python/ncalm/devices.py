"""Device names as users type them (auto, cpu, cuda, cuda:N), checked before any work."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# What every --device accepts; checked without importing torch (config validation, --help paths).
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_HELP = "auto (cuda when available, else cpu), cpu, cuda or cuda:N"


def device_setting(name: str) -> str | None:
    """The check of a device setting (ncalm.settings): None when ``name`` is a device name."""
    return None if isinstance(name, str) and DEVICE_NAME.fullmatch(name) else "must be auto, cpu, cuda or cuda:N"


def check_device_name(name: str, flag: str = "--device") -> None:
    """Refuse a malformed device name before any work; whether the device exists is checked where it is used."""
    if device_setting(name):
        raise ValueError(f"{flag} {name!r}: use auto, cpu, cuda or cuda:N")


def torch_device(name: "str | torch.device", local_rank: int = 0) -> "torch.device":
    """The torch device `name` means; "cuda" is this process's local rank under torchrun.

    Raises ValueError naming the device when it is malformed or not on this machine.
    """
    import torch

    name = str(name) if isinstance(name, torch.device) else name
    check_device_name(name, "device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if int(name[5:]) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)
