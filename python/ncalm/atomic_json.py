"""JSON files that are replaced atomically: a reader (or a resumed run after a
crash) sees the old file or the complete new one, never a torn write. JSON-lines
logs are appended to instead; their readers forgive a torn last line. JSON-lines
inputs (benchmarks, corpora, metrics given by hand) are read with errors that
name the file, the line and the format expected."""
from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import zlib
from pathlib import Path
from typing import IO, Any, Iterable, Iterator


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """The open temporary file ``.NAME.tmpPID`` beside ``path``, synced and renamed over ``path`` when the
    block ends without an error; removed on an error (ncalm.locks removes one left by a writer that died)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:  # UTF-8 whatever the locale
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to path atomically (see replacing)."""
    with replacing(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write obj as JSON to path, atomically (see write_text)."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


def json_safe(obj: Any) -> Any:
    """obj with NaN and inf as None, for result files that strict JSON readers must take (Python writes
    NaN, which JSON has not); a status or note beside the value says why it is missing."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


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
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    records = []
    for n, line in numbered:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == numbered[-1][0]:
                break
            raise ValueError(f"{path}:{n}: corrupt record (line {n} is not a JSON record): {line[:80]!r}") from None
    return records


def json_records(path: str | os.PathLike, expected: str, log: bool = False) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` for each non-empty line of ``path`` (gzip when it ends in .gz).

    ``where`` is ``path:line`` for the caller's own messages; ``expected``
    describes the format, for ours. Raises ValueError. With ``log`` (an
    append-only log, as read_jsonl), a last line cut short by a killed writer is dropped.
    """
    path = Path(path)
    compressed = path.suffix == ".gz"
    try:
        with (gzip.open if compressed else open)(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                where = f"{path}:{i + 1}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    if log and not any(rest.strip() for rest in f):
                        return
                    raise ValueError(f"{where}: not valid JSON ({exc.msg}); {expected}") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{where}: not a JSON object; {expected}")
                yield where, record
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not gzip, cut short, or damaged
        raise ValueError(f"{path}: not a complete gzip file ({exc}); {expected}") from None
    except UnicodeDecodeError:  # e.g. HumanEval.jsonl.gz given to --task gsm8k
        where = "inside the gzip" if compressed else "(compressed, or another task's file?)"
        raise ValueError(f"{path}: not UTF-8 text {where}; {expected}") from None
