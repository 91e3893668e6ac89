"""Checkpoints that are either complete and verified, or refused.

A checkpoint is a safetensors file: every tensor of the saved state (model
weights as ``model/<name>``, optimizer moments, RNG state) is a tensor of the
file, and the rest of the state (configs, step counts, the ncalm version) is
JSON in its metadata, with a SHA-256 of the whole file (taken with the digest
field zeroed). Any safetensors reader sees the weights; nothing is unpickled.

The file is written to a temporary name, fsync'ed and renamed over the
target, so a crash leaves the previous checkpoint intact; a truncated or
altered file fails the size or hash check with a one-line
:class:`CheckpointError` instead of loading half-written weights. A file
verified once is remembered in a small ``.NAME.verified`` file beside it, by
its size, mtime and inode: reloading an unchanged file does not hash it again
(every write replaces the file, so a changed one no longer matches).

Files of the earlier format (a ``torch.save`` payload and a 48-byte trailer)
still load.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import struct
from pathlib import Path

import torch

# CheckpointError is re-exported: callers catch it from here.
from ncalm.lm.hf import CheckpointError, hf_files, read_hf, save_safetensors  # noqa: F401

MAGIC = b"NCALMCK1"  # the trailer of the earlier format
TRAILER = struct.Struct("<8sQ32s")
CHUNK = 1 << 24
FORMAT = "ncalm-checkpoint/2"
_ZEROS = b"0" * 64
_DIGEST = re.compile(rb'"sha256":"([0-9a-f]{64})"')
_MAX_HEADER = 100_000_000  # safetensors' own limit
# Markers in the JSON form of the state for what JSON has not: tensors, tuples, non-string keys.
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Atomically write ``state`` (tensors, dicts, lists, tuples, numbers, strings) to ``path``.

    The installed ncalm version is recorded as ``state["ncalm_version"]``.
    """
    from ncalm import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode({**state, "ncalm_version": __version__}, (), tensors)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_safetensors(tensors, tmp, {"format": FORMAT, "state": json.dumps(skeleton), "sha256": _ZEROS.decode()})
        digest = file_sha256(tmp).hexdigest()
        with open(tmp, "r+b") as f:
            header_len = struct.unpack("<Q", f.read(8))[0]
            (field,) = [m for m in _DIGEST.finditer(f.read(header_len)) if m.group(1) == _ZEROS]
            f.seek(8 + field.start(1))
            f.write(digest.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save leaves no temporary
    with contextlib.suppress(OSError):  # the rename is durable only once the directory entry is on disk
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _remember(path, digest)
    return path


def verify_checkpoint(path: str | os.PathLike) -> tuple[str, dict | None]:
    """Raise :class:`CheckpointError` unless ``path`` is a complete, unaltered checkpoint.

    Returns its SHA-256 (hex) and its safetensors metadata (None for the earlier format).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    stat = path.stat()
    with open(path, "rb") as f:
        if stat.st_size >= TRAILER.size:
            f.seek(stat.st_size - TRAILER.size)
            magic, length, digest = TRAILER.unpack(f.read(TRAILER.size))
            if magic == MAGIC:
                if length != stat.st_size - TRAILER.size or file_sha256(path, length).digest() != digest:
                    raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch)")
                return digest.hex(), None
        f.seek(0)
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"checkpoint {path} is truncated ({stat.st_size} bytes)")
        (header_len,) = struct.unpack("<Q", prefix)
        if not 2 <= header_len <= _MAX_HEADER:
            raise CheckpointError(f"checkpoint {path} is not an ncalm checkpoint")
        header = f.read(header_len)
    if header[:1] != b"{":
        raise CheckpointError(f"checkpoint {path} is " + ("truncated" if not header else "not an ncalm checkpoint"))
    if len(header) < header_len:
        raise CheckpointError(f"checkpoint {path} is truncated ({stat.st_size} bytes)")
    try:
        entries = json.loads(header)
        meta = entries.pop("__metadata__", None) or {}
        end = 8 + header_len + max((e["data_offsets"][1] for e in entries.values()), default=0)
        field = _DIGEST.search(header)
    except (ValueError, TypeError, KeyError, IndexError):
        raise CheckpointError(f"checkpoint {path} is corrupt (unreadable header)") from None
    if meta.get("format") != FORMAT or field is None:
        raise CheckpointError(f"checkpoint {path} is not an ncalm checkpoint")
    if stat.st_size != end:
        raise CheckpointError(f"checkpoint {path} is truncated ({stat.st_size} bytes, {end} expected)"
                              if stat.st_size < end else f"checkpoint {path} has {stat.st_size - end} bytes too many")
    digest = field.group(1).decode()
    if _remembered(path, stat) != digest:
        zeroed = header[:field.start(1)] + _ZEROS + header[field.end(1):]
        if file_sha256(path, start=8 + header_len, head=prefix + zeroed).hexdigest() != digest:
            raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch)")
        _remember(path, digest)
    return digest, meta


def load_checkpoint(path: str | os.PathLike, map_location="cpu", skip: tuple[str, ...] = ()) -> dict:
    """The verified state saved by :func:`save_checkpoint`, without the top-level keys in ``skip``
    (their tensors are not read: e.g. ``skip=("optimizer",)`` to use the weights only)."""
    _, meta = verify_checkpoint(path)
    try:
        if meta is None:
            state = torch.load(path, map_location=map_location, weights_only=True)
            return {k: v for k, v in state.items() if k not in skip}
        from safetensors import safe_open

        skeleton = {k: v for k, v in json.loads(meta["state"]).items() if k not in skip}
        with safe_open(path, framework="pt", device=str(map_location)) as f:
            return _decode(skeleton, f.get_tensor)
    except Exception as exc:  # a verified file that cannot be read is still a user-facing error
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None


def load_weights(path: str | os.PathLike) -> dict:
    """A checkpoint's state without the optimizer, or the same keys (``model``, ``model_config``,
    ``tokenizer``) read from a Hugging Face Llama folder."""
    if Path(path).is_dir():
        return read_hf(path)
    return load_checkpoint(path, skip=("optimizer",))


def load_model(path: str | os.PathLike, device="cpu"):
    """``(model, tokenizer, meta)`` from a checkpoint or an HF Llama folder; tokenizer is None for NCA/Dyck runs.

    ``meta`` is everything in the checkpoint except model and optimizer state
    (model_config, step, tokens, train config, data description...).
    """
    from ncalm.devices import torch_device
    from ncalm.lm.model import LlamaLM, ModelConfig
    from ncalm.lm.tokenizer import tokenizer_from_dict

    device = torch_device(device)  # a bad name fails before the (possibly large) checkpoint is read
    state = load_weights(path)
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


def _encode(obj, path: tuple[str, ...], tensors: dict[str, torch.Tensor]):
    """``obj`` as JSON, its tensors moved into ``tensors`` under their ``/``-joined key path."""
    if isinstance(obj, torch.Tensor):
        name = "/".join(path)
        if name in tensors:
            raise ValueError(f"save_checkpoint: two tensors would be stored as {name!r}")
        tensors[name] = obj.detach().cpu().contiguous()
        return {_TENSOR: name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, (*path, k), tensors) for k, v in obj.items()}
        return {_ITEMS: [[k, _encode(v, (*path, str(k)), tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, (*path, str(i)), tensors) for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else {_TUPLE: items}
    if obj is None or isinstance(obj, (str, int, float)):
        return obj
    raise TypeError(f"save_checkpoint: cannot store {type(obj).__name__} at {'/'.join(path)!r}")


def _decode(obj, tensor):
    """Inverse of :func:`_encode`; ``tensor(name)`` reads one stored tensor."""
    if isinstance(obj, list):
        return [_decode(v, tensor) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1 and _TENSOR in obj:
        return tensor(obj[_TENSOR])
    if len(obj) == 1 and _TUPLE in obj:
        return tuple(_decode(v, tensor) for v in obj[_TUPLE])
    if len(obj) == 1 and _ITEMS in obj:
        return {k: _decode(v, tensor) for k, v in obj[_ITEMS]}
    return {k: _decode(v, tensor) for k, v in obj.items()}


def file_sha256(path: Path, length: int | None = None, start: int = 0, head: bytes = b"") -> "hashlib._Hash":
    """SHA-256 of ``head`` + ``length`` bytes of the file from ``start`` (None: to the end)."""
    h = hashlib.sha256(head)
    remaining = math.inf if length is None else length
    with open(path, "rb") as f:
        f.seek(start)
        while remaining and (chunk := f.read(min(CHUNK, remaining))):
            h.update(chunk)
            remaining -= len(chunk)
    return h


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of what :func:`load_model` reads from a path: a checkpoint file's bytes, or a Hugging
    Face folder's config, weights and tokenizer files (names, sizes and bytes; other files are not read)."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path).hexdigest()
    h = hashlib.sha256()
    for file in hf_files(path):
        h.update(f"{file.relative_to(path).as_posix()}\0{file.stat().st_size}\0".encode())
        h.update(file_sha256(file).digest())
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _remember(path: Path, digest: str) -> None:
    """Record that ``path`` as it is now hashes to ``digest`` (best effort: a read-only directory is fine)."""
    st = path.stat()
    with contextlib.suppress(OSError):
        _stamp_path(path).write_text(json.dumps([st.st_size, st.st_mtime_ns, st.st_ino, digest]))


def _remembered(path: Path, stat: os.stat_result) -> str | None:
    """The digest recorded for ``path`` if the file has not changed since (same size, mtime and inode)."""
    try:
        size, mtime_ns, ino, digest = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError, TypeError):
        return None
    return digest if (size, mtime_ns, ino) == (stat.st_size, stat.st_mtime_ns, stat.st_ino) else None
