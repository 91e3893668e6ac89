"""Benchmark files in JSON lines, read with errors that name the file, the
line and the format expected (a task's file given to another task, a file
cut short, a compressed file taken for text)."""
from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Iterator


def json_records(path: Path, expected: str) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` for each non-empty line of ``path`` (gzip when it ends in .gz).

    ``where`` is ``path:line`` for the caller's own messages; ``expected``
    describes the format, for ours. Raises ValueError.
    """
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
                    raise ValueError(f"{where}: not valid JSON ({exc.msg}); {expected}") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{where}: not a JSON object; {expected}")
                yield where, record
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not gzip, cut short, or damaged
        raise ValueError(f"{path}: not a complete gzip file ({exc}); {expected}") from None
    except UnicodeDecodeError:  # e.g. HumanEval.jsonl.gz given to --task gsm8k
        where = "inside the gzip" if compressed else "(compressed, or another task's file?)"
        raise ValueError(f"{path}: not UTF-8 text {where}; {expected}") from None
