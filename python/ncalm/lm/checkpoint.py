"""Checkpoints that are either complete and verified, or refused.

File layout: a ``torch.save`` payload followed by a 48-byte trailer
(``MAGIC`` + payload length + SHA-256 of the payload). The file is written to
a temporary name, fsync'ed and renamed over the target, so a crash leaves the
previous checkpoint intact; a truncated or altered file fails the trailer or
the hash check with a one-line :class:`CheckpointError` instead of loading
half-written weights.
"""
from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import torch

MAGIC = b"NCALMCK1"
TRAILER = struct.Struct("<8sQ32s")
CHUNK = 1 << 24


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or incompatible."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Atomically write ``state`` (tensors, dicts, lists, numbers, strings) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            length = f.tell()
        digest = _sha256(tmp, length)
        with open(tmp, "ab") as f:
            f.write(TRAILER.pack(MAGIC, length, digest))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def verify_checkpoint(path: str | os.PathLike) -> str:
    """The payload's SHA-256 (hex); :class:`CheckpointError` unless ``path`` is a complete, unaltered checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size < TRAILER.size:
        raise CheckpointError(f"checkpoint {path} is truncated ({size} bytes)")
    with open(path, "rb") as f:
        f.seek(size - TRAILER.size)
        magic, length, digest = TRAILER.unpack(f.read(TRAILER.size))
    if magic != MAGIC or length != size - TRAILER.size:
        raise CheckpointError(f"checkpoint {path} is truncated or not an ncalm checkpoint")
    if _sha256(path, length) != digest:
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch)")
    return digest.hex()


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The verified state dict saved by :func:`save_checkpoint`."""
    verify_checkpoint(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a verified file that torch cannot read is still a user-facing error
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None


def load_model(path: str | os.PathLike, device="cpu"):
    """``(model, tokenizer, meta)`` from a checkpoint; tokenizer is None for NCA/Dyck runs.

    ``meta`` is everything in the checkpoint except model and optimizer state
    (model_config, step, tokens, train config, data description...).
    """
    from ncalm.devices import torch_device
    from ncalm.lm.model import LlamaLM, ModelConfig
    from ncalm.lm.tokenizer import tokenizer_from_dict

    device = torch_device(device)  # a bad name fails before the (possibly large) checkpoint is read
    state = load_checkpoint(path, map_location="cpu")
    if "model" not in state or "model_config" not in state:
        raise CheckpointError(f"checkpoint {path} has no model weights or model_config")
    model = LlamaLM(ModelConfig.from_dict(state["model_config"]))
    load_state_strict(model, state["model"], str(path))
    model.to(device).eval()
    tok = state.get("tokenizer")
    tokenizer = tokenizer_from_dict(tok) if tok else None
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
    return model, tokenizer, meta


def load_state_strict(model: torch.nn.Module, tensors: dict, source: str = "checkpoint") -> None:
    """``load_state_dict`` that names the first missing, extra or mis-shaped tensor."""
    own = model.state_dict()
    for name, t in tensors.items():
        if name not in own:
            raise CheckpointError(f"{source}: unexpected tensor {name!r}")
        if tuple(own[name].shape) != tuple(t.shape):
            raise CheckpointError(
                f"{source}: tensor {name!r} has shape {tuple(t.shape)}, model expects {tuple(own[name].shape)}")
    missing = [n for n in own if n not in tensors]
    if missing:
        raise CheckpointError(f"{source}: missing tensor {missing[0]!r}")
    model.load_state_dict(tensors)


def _sha256(path: Path, length: int) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = length
        while remaining:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                break
            h.update(chunk)
            remaining -= len(chunk)
    return h.digest()


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
