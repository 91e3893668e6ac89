"""Built-in natural text for the text arm: the prose of Python's own documentation.

``pydoc_data.topics`` ships with CPython: about 80 reference-manual chapters
(~0.5 MB of English with reST markup), so the natural-text arm needs no
download, like the standard-library code corpus of the language stage.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

PYDOC = "pydoc"


def resolve_text(spec: str, work_dir: str | Path) -> str:
    """The corpus spec the trainer reads for the text arm: for pydoc, a directory under ``work_dir``
    holding each pydoc topic as ``<topic>.txt`` (written once)."""
    if spec != PYDOC:
        return spec
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise ValueError("text='pydoc' needs the pydoc_data package of the standard library, "
                         "which this Python lacks; set text to a corpus spec instead") from None
    directory = Path(work_dir) / "corpora" / PYDOC
    marker = directory / ".complete"
    if not marker.exists():
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in sorted(topics.items()):
            (directory / f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.txt").write_text(text, encoding="utf-8")
        marker.touch()
    return os.fspath(directory)
