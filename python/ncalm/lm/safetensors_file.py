"""What checkpoints and Hugging Face folders share: their error, and writing a safetensors file."""
from __future__ import annotations

import os
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or incompatible."""


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file``, leaving the file's permissions to the umask as ``open`` does
    (the library makes it readable by its owner only)."""
    from safetensors.torch import save_file

    path.touch()
    mode = path.stat().st_mode
    save_file(tensors, path, metadata=metadata)
    os.chmod(path, mode)
