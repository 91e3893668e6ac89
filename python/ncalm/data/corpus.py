"""Text corpora as train/validation document lists.

Specs: ``stdlib`` (this Python's own standard-library ``.py`` files: a real
code corpus on every machine, no download), a local file, directory or glob
(comma-separated for several), or ``hf:NAME[:CONFIG]`` for Hugging Face
``datasets`` (optional, needs internet or a local cache).

Files are split by a hash of their path (relative to their root), so the
split never depends on file order, machine or cap. When that would hold out
fewer than ``MIN_VAL_FILES_FOR_FILE_SPLIT`` files, the last ``val_percent`` of
each file is validation instead. The caps (``max_bytes``, ``max_val_bytes``)
count UTF-8 bytes.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import itertools
import os
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from ncalm.data.config import TextConfig

MIN_VAL_FILES_FOR_FILE_SPLIT = 5  # fewer held-out files would make a noisy (or empty) validation set
HF_MAX_DOCUMENTS = 10_000_000  # hf: without max_bytes holds the whole stream in memory; stop (and say so) here
TEXT_SUFFIXES = {".txt", ".md", ".py", ".rst", ".json", ".jsonl", ".c", ".h", ".cpp", ".js", ".html", ".tex"}


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def is_validation(key: str, val_percent: float) -> bool:
    """The deterministic split: a key is validation iff its hash falls in the first ``val_percent``."""
    return (_hash(key) % 10000) < val_percent * 100


@functools.lru_cache(maxsize=1)
def stdlib_files() -> tuple[tuple[str, Path], ...]:
    """(relative path, path) of every ``.py`` file of the running Python's standard library."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Third-party packages are not the standard library (and would make the corpus machine-specific).
        dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__"))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if name.endswith(".py") and not rel.startswith("_sysconfigdata"):
                out.append((rel, path))
    return tuple(out)


def _is_pattern(part: str) -> bool:
    return any(c in part for c in "*?[")


def local_files(spec: str) -> list[tuple[str, Path]]:
    """(key, path) for a comma-separated list of files, directories or glob patterns.

    A part that exists is that path, even if its name holds glob characters
    (``x[1].txt``); only a part that does not exist is a pattern.
    """
    out = []
    for part in filter(None, (os.path.expanduser(p.strip()) for p in spec.split(","))):
        if not os.path.exists(part) and _is_pattern(part):
            matches = sorted(glob.glob(part, recursive=True))
            if not matches:
                raise FileNotFoundError(f"data pattern {part!r} matches no file")
            # Keys relative to the pattern's fixed directory, as for a directory spec:
            # "corp/*.txt", "./corp/*.txt" and its absolute spelling split alike.
            root = Path(*itertools.takewhile(lambda p: not _is_pattern(p), Path(part).parts))
            out += [(Path(m).relative_to(root).as_posix(), Path(m)) for m in matches if Path(m).is_file()]
        elif Path(part).is_dir():
            root = Path(part)
            out += [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*"))
                    if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES]
        elif Path(part).is_file():
            out.append((Path(part).name, Path(part)))
        elif os.path.exists(part):  # a FIFO, socket or device: reading it could block or never end
            raise ValueError(f"data path {part!r} is neither a regular file nor a directory")
        else:
            raise FileNotFoundError(f"data path {part!r} does not exist")
    if not out:
        raise FileNotFoundError(f"data {spec!r} holds no text files ({', '.join(sorted(TEXT_SUFFIXES))})")
    return out


def resolved_spec(spec: str) -> list[str]:
    """A corpus spec's comma-separated parts as real paths from this working directory (``stdlib`` and
    ``hf:...`` as they are): what it names here, however its paths are spelled (``corpus``, ``./corpus/``).
    ``bin:DIR`` (ncalm.data.tokens) and ``DIR`` holding train.bin are the same shards."""
    if spec == "stdlib" or spec.startswith("hf:"):
        return [spec]
    return [str(Path(p.strip()).expanduser().resolve()) for p in spec.removeprefix("bin:").split(",") if p.strip()]


def _read(path: Path, skipped: list[str]) -> str | None:
    """The file's text, or None (its name and why appended to ``skipped``)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        skipped.append(f"{path} (not UTF-8)")
    except OSError as exc:
        skipped.append(f"{path} ({exc.strerror or exc})")
    return None


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _head(text: str, n_bytes: int) -> str:
    """The shortest prefix of ``text`` with at least ``n_bytes`` UTF-8 bytes (all of it if shorter)."""
    data = text.encode("utf-8")
    while n_bytes < len(data) and data[n_bytes] & 0xC0 == 0x80:  # not inside a character
        n_bytes += 1
    return data[:n_bytes].decode("utf-8")


class Caps:
    """The text each side of a split has taken, under the rule of every reader of a corpus (split_files,
    hf_documents, `ncalm tokenize`): training text ends at the document that reaches ``max_bytes``, a
    file's head cut there (:func:`_head`), a whole document (a file of a split by file, a row) taken
    whole; validation documents are taken whole until ``max_val_bytes``. Neither cap counts the other
    side's text, and None is no cap. (The order differs: split_files takes files in hash order, tokenize in
    the listing's, so under a cap they may keep different files.)"""

    def __init__(self, max_bytes: int | None, max_val_bytes: int | None = None):
        self.cap = {"train": max_bytes, "val": max_val_bytes}
        self.n = {"train": 0, "val": 0}

    def full(self, split: str) -> bool:
        return self.cap[split] is not None and self.n[split] >= self.cap[split]

    def done(self) -> bool:
        """Both sides full: a reader stops reading."""
        return self.full("train") and self.full("val")

    def take(self, split: str, text: str, whole: bool = False) -> str | None:
        """What the ``split`` side takes of a document: all of it, or (unless ``whole``) a training head
        up to the cap; None once that side is full."""
        if self.full(split):
            return None
        size, cap = _size(text), self.cap[split]
        if split == "train" and not whole and cap is not None and self.n[split] + size > cap:
            text = _head(text, cap - self.n[split])
            size = _size(text)
        self.n[split] += size
        return text


def split_files(files: list[tuple[str, Path]], val_percent: float, max_bytes: int | None,
                max_val_bytes: int | None, warn_unreadable: bool = True) -> tuple[list[str], list[str]]:
    """Read files into (train, val) documents; caps keep a hash-ordered (unbiased) subset.

    The mode depends only on the keys, never on the caps, so that
    validation_documents (max_bytes=1) finds the trainer's validation side.
    """
    files = sorted(files, key=lambda kp: (_hash(kp[0]), kp[0]))
    by_file = sum(is_validation(key, val_percent) for key, _ in files) >= MIN_VAL_FILES_FOR_FILE_SPLIT
    caps, skipped = Caps(max_bytes, max_val_bytes), []
    taken: dict[str, list[str]] = {"train": [], "val": []}
    for key, path in files:
        if caps.done():
            break
        side = "val" if by_file and is_validation(key, val_percent) else "train"
        if by_file and caps.full(side):
            continue
        text = _read(path, skipped)
        if not text:
            continue
        if by_file:
            pieces = [(side, text)]
        else:
            # Every file's tail is validation whatever the training cap, so that
            # validation_documents (max_bytes=1) finds the trainer's tails.
            cut = int(len(text) * (1 - val_percent / 100))
            pieces = [("train", text[:cut]), ("val", text[cut:])]
        for split, piece in pieces:
            piece = caps.take(split, piece, whole=by_file)
            if piece:
                taken[split].append(piece)
    note = ""
    if skipped and warn_unreadable:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        note = f"skipped {len(skipped)} file(s) that could not be read as text: {shown}"
        warnings.warn(note, stacklevel=3)
    return _checked_split(taken, val_percent, note)


def _checked_split(taken: dict[str, list[str]], val_percent: float, note: str = "") -> tuple[list[str], list[str]]:
    train, val = taken["train"], taken["val"]
    if train and val:
        return train, val
    if train:
        hint = f"raise --val-percent (val_percent={val_percent:g}) so that some text is held out"
    elif val:
        hint = f"lower --val-percent (val_percent={val_percent:g}) so that some text is left to train on"
    else:
        hint = "the corpus holds no readable text"
    raise ValueError(f"corpus split left {len(train)} train and {len(val)} validation documents; "
                     f"need at least one of each: {hint}" + (f"; {note}" if note else ""))


def hf_local_files(spec: str) -> tuple[Path, list[Path]] | None:
    """The files of a local ``hf:`` dataset (a folder's, sorted, or the one file) and the folder they lie in;
    None where ``hf:NAME`` is no path here (a hub dataset)."""
    target = Path(spec[3:]).expanduser()
    if not target.exists():
        return None
    if target.is_dir():
        return target, sorted(p for p in target.rglob("*") if p.is_file())
    return target.parent, [target]


def hf_datasets(spec: str):
    """The `datasets` package, which reads every ``hf:`` corpus ``spec``; a one-line error naming it without."""
    try:
        import datasets
    except ImportError:
        raise ValueError(f"data {spec!r} needs the `datasets` package: pip install 'ncalm[hf]'") from None
    return datasets


def hf_rows(spec: str, field: str = "text") -> Iterator[tuple[str, str]]:
    """``(key, text)`` of each row of ``hf:NAME[:CONFIG]`` (the hub's train split, streamed),
    ``hf:DIR`` (a ``save_to_disk`` folder, a DatasetDict's train split; or a folder of data files)
    or ``hf:FILE.jsonl``."""
    datasets = hf_datasets(spec)
    target = spec[3:]
    path = Path(target).expanduser()
    try:
        if path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
            ds = datasets.load_from_disk(str(path))
            ds = ds["train"] if isinstance(ds, datasets.DatasetDict) else ds
        elif path.is_file() and path.suffix in (".jsonl", ".json"):
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        else:
            name, _, config = target.partition(":")
            ds = datasets.load_dataset(name, config or None, split="train", streaming=True)
    except Exception as exc:
        raise ValueError(f"cannot load Hugging Face dataset {target!r} (offline or unknown?): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    for i, row in enumerate(ds):
        if row.get(field) is None:
            raise ValueError(f"Hugging Face dataset {target!r} has no {field!r} column")
        yield str(i), row[field]


def hf_documents(spec: str, val_percent: float, max_bytes: int | None,
                 max_val_bytes: int | None) -> tuple[list[str], list[str]]:
    """The ``text`` column of a Hugging Face dataset (:func:`hf_rows`) as (train, val) documents."""
    caps = Caps(max_bytes, max_val_bytes)
    taken: dict[str, list[str]] = {"train": [], "val": []}
    for key, text in hf_rows(spec):
        if caps.done():
            break
        if int(key) == HF_MAX_DOCUMENTS:
            warnings.warn(f"read only the first {HF_MAX_DOCUMENTS:,} documents of {spec!r}; "
                          f"set max_bytes to choose how much text to use", stacklevel=2)
            break
        split = "val" if is_validation(key, val_percent) else "train"
        piece = caps.take(split, text, whole=True)
        if piece is not None:
            taken[split].append(piece)
    return _checked_split(taken, val_percent)


def documents(spec: str = TextConfig.source, val_percent: float = TextConfig.val_percent,
              max_bytes: int | None = TextConfig.max_bytes,
              max_val_bytes: int | None = TextConfig.max_val_bytes) -> tuple[list[str], list[str]]:
    """(train, validation) documents of a corpus spec (see module docstring); the defaults are data.text's."""
    if not 0 < val_percent < 100:
        raise ValueError(f"val_percent must be in (0, 100), got {val_percent}")
    if spec == "stdlib":
        # A few stdlib test files are deliberately not UTF-8: skipping them is no news.
        return split_files(list(stdlib_files()), val_percent, max_bytes, max_val_bytes, warn_unreadable=False)
    if spec.startswith("hf:"):
        return hf_documents(spec, val_percent, max_bytes, max_val_bytes)
    files = local_files(spec)
    jsonl = [str(p) for _, p in files if p.suffix.lower() == ".jsonl"]
    if jsonl:  # trained on as text, it would be braces, keys and escapes
        raise ValueError(f"{jsonl[0]} is JSON lines, not text: tokenize it by field with `ncalm tokenize --text "
                         f"{spec} --field FIELD --out DIR` and train on bin:DIR (or use hf:{jsonl[0]})")
    return split_files(files, val_percent, max_bytes, max_val_bytes)


def validation_documents(spec: str, val_percent: float, max_val_bytes: int | None) -> list[str]:
    """The validation side of documents(spec, ...), the same files the trainer validated on.

    max_bytes=1 because the split never depends on the training cap: the
    training side need not be read beyond its first byte.
    """
    return documents(spec, val_percent, max_bytes=1, max_val_bytes=max_val_bytes)[1]
