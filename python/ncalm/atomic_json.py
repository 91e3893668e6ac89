"""JSON files that are replaced atomically: a reader (or a resumed run after a
crash) sees the old file or the complete new one, never a torn write."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to path via a synced temporary file and os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write obj as JSON to path, atomically (see write_text)."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n")
