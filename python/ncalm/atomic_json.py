"""JSON files that are replaced atomically: a reader (or a resumed run after a
crash) sees the old file or the complete new one, never a torn write. JSON-lines
logs are appended to instead; their readers forgive a torn last line."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any, Iterable, Iterator


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """The open temporary file ``.NAME.tmpPID`` beside ``path``, synced and renamed over ``path`` when the
    block ends without an error (ncalm.locks removes one left by a writer that died)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to path atomically (see replacing)."""
    with replacing(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write obj as JSON to path, atomically (see write_text)."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> Path:
    """Rewrite a JSON-lines file with these records, atomically (see write_text)."""
    return write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def read_json(path: str | os.PathLike, keys: Iterable[str] = (), what: str = "file") -> Any:
    """The JSON in ``path``; a ValueError that names the file when it is not
    JSON, or not an object with all of ``keys`` (``what`` says what it should be)."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); a damaged {what}: delete or restore it") from None
    missing = [k for k in keys if not isinstance(value, dict) or k not in value]
    if missing:
        raise ValueError(f"{path}: no {missing[0]!r}; not a {what}, or a damaged one: delete or restore it")
    return value


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """The records of an append-only JSON-lines file.

    A last line cut short by a killed writer is dropped (its record is redone);
    any other line that is not JSON is a ValueError naming it. Blank lines hold
    no record and are skipped.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == last:
                break
            raise ValueError(f"{path}:{i + 1}: corrupt record (line {i + 1} is not a JSON record): "
                             f"{line[:80]!r}") from None
    return records
