"""Device names as users type them (auto, cpu, cuda, cuda:N), checked before any work.

A device that is not on this machine is a SettingError naming the setting it came from (``key``:
run.device, device, ...) and what this machine has.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ncalm.settings import SettingError

if TYPE_CHECKING:
    import torch

# What every --device accepts; checked without importing torch (config validation, --help paths).
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_HELP = "auto (cuda when available, else cpu), cpu, cuda or cuda:N"
USE_CPU = "use cpu or auto"  # the advice where CUDA cannot serve


def device_setting(name: str) -> str | None:
    """The check of a device setting (ncalm.settings): None when ``name`` is a device name."""
    return None if isinstance(name, str) and DEVICE_NAME.fullmatch(name) else "must be auto, cpu, cuda or cuda:N"


def check_device_name(name: str, key: str = "device") -> None:
    """Refuse a malformed device name before any work; whether the device exists is checked where it is used."""
    problem = device_setting(name)
    if problem:
        raise SettingError(key, f"{problem}, got {name!r}")


def no_cuda(key: str, name: str, why: str) -> SettingError:
    """The error for CUDA device ``name`` of setting ``key`` on a machine where ``why`` says CUDA cannot serve."""
    return SettingError(key, f"{name!r} needs a CUDA GPU: {why}; {USE_CPU}")


def not_here(key: str, shown: str, count: int) -> SettingError:
    """The error for CUDA device ``shown`` of setting ``key`` past the ``count`` devices this machine has."""
    return SettingError(key, f"{shown} is not on this machine, which has {count} CUDA device(s): cuda:0 to "
                             f"cuda:{count - 1}")


def torch_device(name: "str | torch.device", local_rank: int = 0, key: str = "device") -> "torch.device":
    """The torch device `name` means; "cuda" is this process's local rank under torchrun.

    Raises SettingError naming the setting ``key`` when ``name`` is malformed or not on this machine.
    """
    import torch

    name = str(name) if isinstance(name, torch.device) else name
    check_device_name(name, key)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not name.startswith("cuda"):
        return torch.device(name)
    index = int(name[5:]) if ":" in name else local_rank
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise no_cuda(key, name, f"this torch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
                      else "torch sees no CUDA GPU on this machine")
    if index >= count:
        which = repr(name) + ("" if ":" in name else f" (cuda:{index}, for local rank {index})")
        raise not_here(key, which, count)
    return torch.device("cuda", index)
