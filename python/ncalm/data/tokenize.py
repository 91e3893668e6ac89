"""Tokenize a corpus once into ``train.bin``/``val.bin`` + ``meta.json`` (+ ``tokenizer.json``).

Every stage, arm, resume and evaluation then memory-maps the token files
instead of reading and tokenizing the text again (see ncalm.data.tokens).

Documents: each text file is one document; each line of a ``.jsonl`` file is
one (its ``field``); so is each row of a Hugging Face dataset (``hf:NAME``,
``hf:SAVED_DIR`` from ``save_to_disk``, ``hf:FILE.jsonl``; needs `datasets`).
Each document is followed by the end-of-text id. The split is by a hash of
the document's key (as ncalm.data.corpus); when that would hold out fewer
than ``MIN_VAL_FILES_FOR_FILE_SPLIT`` files of a plain-file corpus, the last
``val_percent`` of each file is validation instead.

Work is cut into chunks of about ``chunk_bytes`` of text (a long document at
safe places, see :func:`safe_cuts`), encoded by a pool of processes. Each
finished chunk is a part file under ``OUT/parts/``: an interrupted run rerun
skips the parts it has. The final files are written under temporary names and
renamed; ``meta.json`` is written last and holds the source fingerprint, so a
second run on the same corpus with the same settings tokenizes nothing. A folder
holding another tokenization (other source, tokenizer or settings in its
meta.json, or token files without one) is replaced only with ``force``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ncalm.atomic_json import json_records, read_json, replacing, write_json, write_text
from ncalm.data.bpe import GPT2Encoder
from ncalm.data.config import TextConfig, check_tokenizer
from ncalm.data.corpus import (MIN_VAL_FILES_FOR_FILE_SPLIT, Caps, _size, hf_datasets, hf_local_files, hf_rows,
                               is_validation, local_files, resolved_spec, stdlib_files)
from ncalm.lm.tokenizer import (EOS_TEXT, TOKENIZER_FILE, BPETokenizer, ByteTokenizer, byte_level_bpe_json,
                                tokenizer_from_dict)
from ncalm.settings import (Settings, SettingError, at_least, differences, folder, output_folder, parse_count, same_as,
                            setting)

META = "meta.json"
PARTS = "parts"
PLAN = "plan.json"
OUTPUTS = ("train.bin", "val.bin", META, TOKENIZER_FILE)  # what tokenize() writes in OUT, beside OUT/parts/
# What tokenize() writes in OUT/parts/: the plan, the part files and their temporaries (ncalm.atomic_json's
# ``.NAME.tmpPID``, left by a killed writer). Any other file there is not ours (a corpus's own parts/ folder).
_FINISHED = re.compile(r"(?:train|val)_\d{6,}\.bin")  # a part file, whole (written under a temporary name)
_PART = rf"(?:{re.escape(PLAN)}|{_FINISHED.pattern})"
_OUR_PART = re.compile(rf"{_PART}|\.{_PART}\.tmp\d+")
GPT2_FILES_ENV = "NCALM_GPT2_FILES"
# The published GPT-2 files (tiktoken's openai_public.gpt2 checks the same hashes).
GPT2_VOCAB = 50257  # 50,000 merges, 256 bytes and <|endoftext|>
GPT2_HASHES = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
               "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}


@dataclass
class TokenizeConfig(Settings):
    """What `ncalm tokenize` reads, how it splits and tokenizes it, and where it writes."""

    DASHED = True  # options --out, --tokenizer, --val-percent, ... named after the fields

    source: str = setting("", "corpus (required): FILE/DIR/GLOB[,...] (.jsonl: one document per line, its --field), "
                              "stdlib, or hf:NAME[:CONFIG] / hf:SAVED_DIR / hf:FILE.jsonl (needs `datasets`)",
                          flags=("--text",))
    out: str = setting("", "output folder (required): train.bin, val.bin, meta.json, tokenizer.json",
                       check=lambda v: folder(v) if v else None)  # empty: none given yet (require says so)
    tokenizer: str = setting("gpt2", "gpt2 (tiktoken, the paper's), byte, bpe (trained on the training split) "
                                     "or hf:PATH (a Hugging Face tokenizer.json with <|endoftext|>)",
                             check=check_tokenizer)
    gpt2_files: str = setting("", f"folder holding GPT-2's vocab.bpe and encoder.json (no download); "
                                  f"empty: ${GPT2_FILES_ENV}")
    bpe_vocab: int = same_as(TextConfig, "bpe_vocab")
    field: str = setting("text", "the text field of .jsonl lines and dataset rows")
    val_percent: float = same_as(TextConfig, "val_percent")
    max_bytes: int | None = setting(None, "cap on training text in UTF-8 bytes, e.g. 2G (validation text is "
                                          "not counted; a split by whole files ends with the file that reaches "
                                          "it); unset = all",
                                    check=at_least(1), parse=parse_count)
    max_val_bytes: int | None = setting(None, "cap on validation text in UTF-8 bytes, whole documents, e.g. 10M; "
                                              "unset = all (with --max-bytes, a dataset or .jsonl is then still "
                                              "read to its end for its validation rows)",
                                        check=at_least(1), parse=parse_count)
    workers: int = setting(0, "tokenizing processes (0 = one per core)", check=at_least(0))
    chunk_bytes: int = setting(4 << 20, "text per work item and part file", check=at_least(1 << 10),
                               parse=parse_count)
    force: bool = setting(False, "replace another tokenization in --out (another source, tokenizer or settings); "
                                 "a folder already up to date is kept either way")
    # --help shows --no-progress: the bar is on by default (--progress, kept, says so again).
    progress: bool = setting(True, "no progress bar on stderr (progress=false)", flags=("--no-progress", "--progress"))

    def require(self) -> None:
        """What a run needs beyond valid values (the defaults are empty so that --help can show them)."""
        if not self.source:
            raise SettingError("source", "no corpus given: pass --text FILE/DIR/GLOB or hf:NAME")
        if not self.out.strip():
            raise SettingError("out", "no output folder given: pass --out DIR")


# --- tokenizers ------------------------------------------------------------------------------

def gpt2_dir(setting_value: str = "") -> Path:
    """The folder with GPT-2's vocab.bpe and encoder.json: the setting, else $NCALM_GPT2_FILES."""
    where = setting_value or os.environ.get(GPT2_FILES_ENV, "")
    if not where:
        raise SettingError("gpt2_files", f"the gpt2 tokenizer needs GPT-2's vocab.bpe and encoder.json "
                                         f"(no download): pass --gpt2-files DIR or set ${GPT2_FILES_ENV}")
    root = Path(where).expanduser()
    missing = [n for n in GPT2_HASHES if not (root / n).is_file()]
    if missing:
        raise SettingError("gpt2_files", f"{root} lacks {', '.join(missing)} (GPT-2's BPE files)")
    return root


def data_gym_encoding(root: Path, name: str = "gpt2", hashes: dict | None = None):
    """A tiktoken Encoding from data-gym files (vocab.bpe, encoder.json), as tiktoken's openai_public.gpt2."""
    try:
        import tiktoken
    except ImportError:
        raise ImportError("the gpt2 tokenizer needs tiktoken: pip install 'ncalm[gpt2]'") from None
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    hashes = hashes or {}
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(root / "vocab.bpe"), str(root / "encoder.json"),
                                                hashes.get("vocab.bpe"), hashes.get("encoder.json"))
    except (ValueError, AssertionError, KeyError) as exc:  # hash mismatch; merges and encoder disagree
        raise ValueError(f"{root}: not GPT-2's BPE files ({exc or type(exc).__name__})") from None
    return tiktoken.Encoding(name=name, pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={EOS_TEXT: len(ranks)})


def data_gym_hf_json(root: Path) -> str:
    """The same tokenizer as a Hugging Face tokenizer.json (byte-level BPE: same ids as tiktoken's):
    GPT-2's vocabulary, merges and end-of-text id."""
    vocab = json.loads((root / "encoder.json").read_text(encoding="utf-8"))
    eos = vocab.setdefault(EOS_TEXT, len(vocab))
    return byte_level_bpe_json(vocab, (root / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:-1], eos)


def hf_tokenizer_json(spec: str) -> str:
    """The text of the tokenizer.json that ``hf:PATH`` names (a file, or a folder holding one)."""
    path = Path(spec[3:]).expanduser()
    path = path / TOKENIZER_FILE if path.is_dir() else path
    if not path.is_file():
        raise SettingError("tokenizer", f"{spec}: no tokenizer.json at {path}")
    return path.read_text(encoding="utf-8")


def named_tokenizer(setting_value: str):
    """The tokenizer a tokenizer setting names without a corpus (byte; gpt2 from ``$NCALM_GPT2_FILES``;
    hf:PATH) as ncalm.lm.tokenizer's object; None for bpe, which the corpus trains."""
    if setting_value == "bpe":
        return None
    if setting_value == "byte":
        return ByteTokenizer()
    text = data_gym_hf_json(gpt2_dir()) if setting_value == "gpt2" else hf_tokenizer_json(setting_value)
    return tokenizer_from_dict({"type": "bpe", "json": text})


class Encoder:
    """Text -> ids, made in each worker process from a picklable description."""

    def __init__(self, kind: str, arg: str):
        self.kind = kind
        if kind == "gpt2":  # tiktoken's ids from the compiled encoder (ncalm.data.bpe), tiktoken its fallback
            self._enc = GPT2Encoder(data_gym_encoding(Path(arg), hashes=GPT2_HASHES))
            self.eos, self.vocab_size = self._enc.encoding.eot_token, self._enc.encoding.n_vocab
        else:
            self._enc = tokenizer_from_dict({"type": "bpe", "json": arg}) if kind == "hf" else ByteTokenizer()
            self.eos, self.vocab_size = self._enc.eos_id, self._enc.vocab_size

    def encode(self, pieces: list[tuple[str, bool]], dtype) -> np.ndarray:
        """The pieces' ids, each followed by EOS where its flag says (the end of a document)."""
        if self.kind == "byte":  # ByteTokenizer's ids, without a Python list per byte
            ids = [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t, _ in pieces]
        else:  # gpt2: encode_ordinary's ids (no special tokens), an array; hf: a literal <|endoftext|> as text
            ids = [self._enc.encode(t) for t, _ in pieces]
        eos = np.asarray([self.eos], dtype=dtype)
        out = []
        for part, (_, end) in zip(ids, pieces):
            out += [np.asarray(part, dtype=dtype)] + ([eos] if end else [])
        return np.concatenate(out) if out else np.zeros(0, dtype=dtype)


# --- documents -------------------------------------------------------------------------------

_SAFE = re.compile(r"(?<=\S\n)(?=\S)")


def safe_cuts(text: str, size: int) -> list[str]:
    """``text`` in pieces of about ``size`` characters, cut only between "X\\n" and "Y" (X, Y not
    whitespace): GPT-2's pre-tokenizer (and byte-level BPE's) ends a piece there, so the pieces'
    ids joined are the whole text's ids. A text with no such place stays whole."""
    pieces, start = [], 0
    while len(text) - start > size:
        m = _SAFE.search(text, start + size)
        if m is None:
            break
        pieces.append(text[start:m.start()])
        start = m.start()
    pieces.append(text[start:])
    return pieces


def _jsonl_rows(key: str, path: Path, field: str) -> Iterator[tuple[str, str]]:
    expected = f"a .jsonl corpus is JSON lines, one object per line with a {field!r} field of text (set --field)"
    for where, row in json_records(path, expected):
        if not isinstance(row.get(field), str):
            raise ValueError(f"{where}: field {field!r} is {'not text' if field in row else 'missing'}; {expected}")
        yield f"{key}:{where.rpartition(':')[2]}", row[field]  # key:LINE, as the split has always hashed it


def _files(source: str, out: str = "") -> list[tuple[str, Path]]:
    """The corpus files less tokenize()'s own outputs in ``out``, which an --out in the corpus folder
    (or the folder itself) would read as text on the next run. Left out rather than such an --out refused:
    a glob or list of files may leave the folder's other files out of the corpus, and only the listing
    knows; the names are few and fixed, so any other file of the folder stays in the corpus."""
    files = list(stdlib_files()) if source == "stdlib" else local_files(source)
    target = Path(out).expanduser().resolve() if out.strip() else None

    def ours(p: Path) -> bool:  # only a name tokenize() writes costs a resolve (stdlib has 1,800 files)
        folder = (p.parent.parent if p.parent.name == PARTS and _OUR_PART.fullmatch(p.name)
                  else p.parent if p.name in OUTPUTS else None)
        return folder is not None and folder.resolve() == target
    return [(k, p) for k, p in files if target is None or not ours(p)]


def documents(cfg: TokenizeConfig) -> Iterator[tuple[str, str]]:
    """``(split, text)`` of every document in corpus order (a file's head and tail are two documents
    when the split holds out each file's tail, the fallback for corpora of few files). The caps are
    the trainer's corpus's (:class:`ncalm.data.corpus.Caps`): ``max_bytes`` cuts training text only,
    ``max_val_bytes`` validation text only; a file for a full side is not read, and reading stops
    once both are full."""
    caps = Caps(cfg.max_bytes, cfg.max_val_bytes)

    def kept(pieces: Iterable[tuple[str, str]], whole: bool = True) -> Iterator[tuple[str, str]]:
        for split, text in pieces:
            if caps.done():
                return
            taken = caps.take(split, text, whole)
            if taken is not None:
                yield split, taken

    def side(key: str) -> str:
        return "val" if is_validation(key, cfg.val_percent) else "train"

    if cfg.source.startswith("hf:"):
        yield from kept((side(key), text) for key, text in hf_rows(cfg.source, cfg.field))
        return
    files = _files(cfg.source, cfg.out)
    plain = [k for k, p in files if p.suffix != ".jsonl"]
    by_file = sum(is_validation(k, cfg.val_percent) for k in plain) >= MIN_VAL_FILES_FOR_FILE_SPLIT
    for key, path in files:
        if caps.done():
            return
        if path.suffix == ".jsonl":
            yield from kept((side(k), text) for k, text in _jsonl_rows(key, path, cfg.field))
            continue
        if by_file and caps.full(side(key)):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            if cfg.source == "stdlib":
                continue  # not text (stdlib has a few such files on purpose)
            # Skipped, a corpus of such files once ended in "the split left no training text".
            bad = exc.object[exc.start:exc.start + 1]
            raise ValueError(f"{path}: not UTF-8 text (byte {exc.start:,} is {bad!r}); tokenize reads UTF-8 "
                             f"only: convert it (iconv -t UTF-8) or leave it out of --text") from None
        if by_file:
            yield from kept([(side(key), text)])
        else:
            cut = int(len(text) * (1 - cfg.val_percent / 100))
            yield from kept([("train", text[:cut]), ("val", text[cut:])], whole=False)


def fingerprint(cfg: TokenizeConfig, tokenizer_id: str, extra: dict | None = None) -> str:
    """What the token files depend on: the sources (:func:`source_stamps`), the settings and ``extra``."""
    settings = {k: getattr(cfg, k) for k in ("field", "val_percent", "max_bytes", "bpe_vocab")} | (extra or {})
    # tokenize's own split once counted validation text too: a folder capped so is not up to date (the
    # token cache's corpus split never did, and keeps its folders).
    if cfg.max_bytes is not None and settings.get("split") != "corpus":
        settings["max_bytes_counts"] = "train"
    if cfg.max_val_bytes is not None:  # only when set: an uncapped folder keeps the fingerprint it had
        settings["max_val_bytes"] = cfg.max_val_bytes
    blob = json.dumps({"sources": source_stamps(cfg.source, cfg.out), "settings": settings,
                       "tokenizer": tokenizer_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def source_stamps(source: str, out: str = "") -> list:
    """What names a corpus's files without reading them: (real path, size, mtime) of each (a hub dataset: its
    name), less tokenize()'s outputs in ``out``. A changed, replaced or touched file changes them."""
    def stamp(name: str, p: Path) -> tuple[str, int, int]:
        st = p.stat()
        return name, st.st_size, st.st_mtime_ns

    if source.startswith("hf:"):
        local = hf_local_files(source)
        return [stamp(str(p), p) for p in local[1]] if local else [source]

    # Path.resolve's string, with each folder resolved once (every start fingerprints its corpus:
    # resolving each standard-library file took 0.2 s).
    @functools.cache
    def real_dir(parent: Path) -> str:
        return str(parent.resolve())

    return [stamp(str(p.resolve()) if p.is_symlink() else os.path.join(real_dir(p.parent), p.name), p)
            for _, p in _files(source, out)]


# --- the work --------------------------------------------------------------------------------

_WORKER: Encoder | None = None


def _init_worker(kind: str | None = None, arg: str | None = None) -> None:
    """A pool worker: Ctrl-C is the parent's to handle (a worker interrupted inside the pool's queue left
    the pool hanging), and a spawned worker builds its encoder (a forked one has the parent's)."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if kind is not None:
        _WORKER = Encoder(kind, arg)


def _encode_chunk(job: tuple[str, list[tuple[str, bool]], str]) -> str:
    path, pieces, dtype = job
    assert _WORKER is not None, "set by tokenize() before the pool forks, or by _init_worker"
    ids = _WORKER.encode(pieces, np.dtype(dtype))
    with replacing(path, "wb") as f:  # synced before the rename: a rerun keeps any part it finds, unread
        ids.tofile(f)
    return path


def tokenizer_identity(cfg: TokenizeConfig, tokenizer_json: str | None = None) -> str:
    """What names the tokenizer in the fingerprint, known before any (BPE) training."""
    if tokenizer_json is not None or cfg.tokenizer.startswith("hf:"):
        text = tokenizer_json if tokenizer_json is not None else hf_tokenizer_json(cfg.tokenizer)
        return "hf:sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"bpe:{cfg.bpe_vocab}" if cfg.tokenizer == "bpe" else cfg.tokenizer


def _tokenizer(cfg: TokenizeConfig, docs: Callable[[], Iterable[tuple[str, str]]],
               tokenizer_json: str | None = None) -> tuple[str, str, str]:
    """(encoder kind, encoder arg, tokenizer.json text) for the configured (or given) tokenizer."""
    if tokenizer_json is not None:
        text = tokenizer_json
    elif cfg.tokenizer == "gpt2":
        root = gpt2_dir(cfg.gpt2_files)
        return "gpt2", str(root), data_gym_hf_json(root)
    elif cfg.tokenizer == "byte":
        return "byte", "", ByteTokenizer().to_hf_json()
    elif cfg.tokenizer.startswith("hf:"):
        text = hf_tokenizer_json(cfg.tokenizer)
    else:  # bpe: trained on the training split's text
        text = BPETokenizer.train((t for split, t in docs() if split == "train"), cfg.bpe_vocab).to_hf_json()
    return "hf", text, text


def _chunks(cfg: TokenizeConfig, docs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[tuple[str, bool]], int]]:
    """``(split, pieces, bytes)`` of about ``chunk_bytes`` each, in a fixed order; a piece is
    ``(text, ends a document)``."""
    pending: dict[str, tuple[list, int]] = {"train": ([], 0), "val": ([], 0)}
    for split, text in docs:
        pieces, n_bytes = pending[split]
        cuts = safe_cuts(text, cfg.chunk_bytes)
        for i, piece in enumerate(cuts):
            pieces.append((piece, i == len(cuts) - 1))
            n_bytes += _size(piece)
            if n_bytes >= cfg.chunk_bytes:
                yield split, pieces, n_bytes
                pieces, n_bytes = [], 0
        pending[split] = (pieces, n_bytes)
    for split, (pieces, n_bytes) in pending.items():
        if pieces:
            yield split, pieces, n_bytes


def is_up_to_date(out: Path, print_fp: str) -> dict | None:
    """The folder's meta.json when it was made from this fingerprint and its files are whole."""
    try:
        meta = read_json(out / META)
    except (OSError, ValueError):
        return None
    if meta.get("fingerprint") != print_fp:
        return None
    item = np.dtype(meta["dtype"]).itemsize
    for split in ("train", "val"):
        p = out / f"{split}.bin"
        if not p.is_file() or p.stat().st_size != meta[split]["tokens"] * item:
            return None
    return meta


def clear_parts(parts: Path) -> None:
    """Delete tokenize()'s own files in ``parts`` (see ``_OUR_PART``), then the folder if that emptied it:
    with --out in the corpus folder, OUT/parts/ may be the corpus's own, whose files are never ours to delete."""
    if not parts.is_dir():
        return
    for p in parts.iterdir():
        if _OUR_PART.fullmatch(p.name) and p.is_file():
            p.unlink()
    if not any(parts.iterdir()):
        parts.rmdir()


@contextmanager
def _no_empty_plan_left(parts: Path) -> Iterator[None]:
    """A run that fails before it finished a part file leaves no parts/ (a plan of nothing to resume); with
    the lock file going too, a failed run into a new --out leaves no folder at all (nor the parents it made)."""
    try:
        yield
    except BaseException:
        # Never in place of the error (Ctrl-C's exit 130 was "Directory not empty": a worker's temp file
        # written after the listing); what stays is a plan with no finished part, started over or cleared next.
        with suppress(OSError):
            if parts.is_dir() and not any(map(_FINISHED.fullmatch, os.listdir(parts))):
                clear_parts(parts)
        raise


def _refuse_another(out: Path, about: dict) -> None:
    """FileExistsError when ``out`` holds another tokenization than ``about`` describes (its meta.json
    records other values) or token files or a tokenizer.json without a meta.json of ours (nanoGPT's, say,
    or a corpus's own tokenizer.json with --out in the corpus folder), which would be overwritten. The same
    description over changed corpus files is this tokenization brought up to date, and a folder with
    our parts/ but no meta.json is an interrupted run of ours: both are written without --force.
    The source is compared resolved (``source_resolved``: ``corpus`` and ``./corpus/`` are one corpus,
    ``corpus`` from another folder another); a meta.json written before that key compares it as typed."""
    try:
        meta = read_json(out / META)
    except (OSError, ValueError):
        meta = None
    if isinstance(meta, dict) and "fingerprint" in meta:
        skip = "source" if "source_resolved" in meta else "source_resolved"
        changed = differences({k: meta.get(k) for k in about}, about, ignore=(skip,))
        if not changed:
            return
        what = f"another tokenization ({'; '.join(changed)})"
    elif (out / PARTS / PLAN).is_file() or (meta is None and not any(out.glob("*.bin"))
                                            and not (out / TOKENIZER_FILE).exists()):
        return  # an interrupted run of ours (whose tokenizer.json comes while plan.json is there), or nothing to lose
    else:
        what = "token files or a tokenizer.json that `ncalm tokenize` did not describe (no meta.json of its own)"
    raise FileExistsError(f"--out {out} already holds {what}; pass --force to replace it, or choose another --out")


def tokenize(cfg: TokenizeConfig, echo=print, docs: Callable[[], Iterable[tuple[str, str]]] | None = None,
             extra: dict | None = None, tokenizer_json: str | None = None) -> dict:
    """Write ``cfg.out``'s token files (unless up to date); returns its meta.json record.

    The text cache (ncalm.data.cache) passes ``docs``, a function giving the ``(split, text)`` documents
    to write instead of reading ``cfg.source`` (which still names the files the fingerprint covers),
    ``extra`` settings they depend on, and ``tokenizer_json``, a tokenizer (a resumed run's) to encode
    with instead of making ``cfg.tokenizer``.
    """
    import ncalm
    from tqdm import tqdm

    from ncalm.locks import exclusive

    cfg.require()
    out = output_folder("out", Path(cfg.out).expanduser())
    identity = tokenizer_identity(cfg, tokenizer_json)
    if cfg.tokenizer == "gpt2" and tokenizer_json is None:
        gpt2_dir(cfg.gpt2_files)  # a missing setting is an error even when the folder is up to date
    fp = fingerprint(cfg, identity, extra)
    if docs is None:
        docs = lambda: documents(cfg)  # noqa: E731
    with exclusive(out), _no_empty_plan_left(out / PARTS):  # exclusive makes OUT, and removes it if left empty
        meta = is_up_to_date(out, fp)
        if meta is not None:
            echo(f"{out}: up to date ({meta['train']['tokens']:,} train + {meta['val']['tokens']:,} val tokens)")
            return meta
        if cfg.source.startswith("hf:"):
            hf_datasets(cfg.source)  # missing: an error now, not under a progress bar
        # What meta.json records of the settings; the source also resolved, as _refuse_another compares it.
        about = {"source": cfg.source, "source_resolved": resolved_spec(cfg.source), "tokenizer": identity,
                 "field": cfg.field, "val_percent": cfg.val_percent, "max_bytes": cfg.max_bytes,
                 "max_val_bytes": cfg.max_val_bytes}  # an older meta.json reads None: unset, as it was
        if not cfg.force:
            _refuse_another(out, about)
        kind, arg, hf_json = _tokenizer(cfg, docs, tokenizer_json)
        encoder = Encoder(kind, arg)  # loaded once here; forked workers inherit it
        vocab = encoder.vocab_size
        dtype = "uint16" if vocab <= 1 << 16 else "uint32"
        parts = out / PARTS
        plan = {"fingerprint": fp, "dtype": dtype, "chunk_bytes": cfg.chunk_bytes}
        if not (parts / PLAN).is_file() or read_json(parts / PLAN) != plan:
            clear_parts(parts)  # parts of another corpus or other settings
        parts.mkdir(exist_ok=True)
        write_json(parts / PLAN, plan)
        counts: dict[str, dict[str, Any]] = {s: {"bytes": 0, "documents": 0, "parts": []} for s in ("train", "val")}
        workers = cfg.workers or os.cpu_count() or 1
        t0, skipped = time.perf_counter(), 0
        # Shown after half a second: a corpus refused at its first document (a .jsonl without the field) is
        # an error alone, not an empty bar and then the error.
        bar = tqdm(desc="tokenize", unit="B", unit_scale=True, disable=not cfg.progress, dynamic_ncols=True,
                   delay=0.5)
        if kind == "hf":
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the pool is the parallelism
        global _WORKER
        _WORKER, pool = encoder, None
        if workers > 1:
            # An executor, not multiprocessing.Pool: a worker that dies (killed, out of memory) breaks it
            # and the wait below raises, where Pool would wait for the lost chunk forever.
            fork = os.name == "posix"
            pool = ProcessPoolExecutor(workers, multiprocessing.get_context("fork" if fork else "spawn"),
                                       _init_worker, () if fork else (kind, arg))
        pending: deque = deque()  # (future, bytes): at most 2 per worker, so the corpus is never all in memory
        try:
            for split, pieces, n_bytes in _chunks(cfg, docs()):
                c = counts[split]
                path = parts / f"{split}_{len(c['parts']):06d}.bin"
                c["parts"].append(path)
                c["bytes"] += n_bytes
                c["documents"] += sum(end for _, end in pieces)
                if path.is_file():  # finished by an earlier, interrupted run
                    skipped += 1
                    bar.update(n_bytes)
                    continue
                job = (str(path), pieces, dtype)
                if pool is None:
                    _encode_chunk(job)
                    bar.update(n_bytes)
                else:
                    pending.append((pool.submit(_encode_chunk, job), n_bytes))
                while pending and (len(pending) > 2 * workers or pending[0][0].done()):
                    future, done_bytes = pending.popleft()
                    future.result()
                    bar.update(done_bytes)
            for future, done_bytes in pending:  # the rest, in order
                future.result()
                bar.update(done_bytes)
        except BrokenProcessPool:
            raise OSError(f"{out}: a tokenizer worker process died (killed, or out of memory?); the finished "
                          "parts are kept: run the same command again to continue") from None
        except KeyboardInterrupt:
            # It may land inside the pool's own calls: stop the workers rather than wait on them (a part
            # being written is renamed into place whole, or not at all).
            if pool is not None:
                if hasattr(pool, "terminate_workers"):  # Python 3.14
                    pool.terminate_workers()
                else:
                    for process in list(pool._processes.values()):
                        process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
            raise
        finally:
            bar.close()
            if pool is not None:  # the chunks being written finish (each is whole or absent), the rest are dropped
                pool.shutdown(wait=True, cancel_futures=True)
        record = {"ncalm_version": ncalm.__version__, **about, "vocab_size": vocab, "dtype": dtype,
                  "eos_id": encoder.eos, "fingerprint": fp}
        if not counts["train"]["parts"] or not counts["val"]["parts"]:
            empty = "training" if not counts["train"]["parts"] else "validation"
            # Not the cap's doing: max_bytes >= 1 leaves some training text and never cuts validation text.
            how = "lower" if empty == "training" else "raise"
            clear_parts(parts)  # nothing to resume: these settings split the corpus the same way again
            raise ValueError(f"{cfg.source}: the split left no {empty} text; {how} --val-percent "
                             f"(val_percent={cfg.val_percent:g})")
        # An older tokenization's description goes first: killed while the token files are replaced, the
        # folder must not pass for whole with the old tokenizer's meta.json and tokenizer.json beside new ids.
        (out / META).unlink(missing_ok=True)
        (out / TOKENIZER_FILE).unlink(missing_ok=True)
        for split, c in counts.items():
            with replacing(out / f"{split}.bin", "wb") as f:
                for p in c["parts"]:
                    with open(p, "rb") as part:
                        shutil.copyfileobj(part, f, 1 << 24)
            n_tokens = (out / f"{split}.bin").stat().st_size // np.dtype(dtype).itemsize
            record[split] = {"tokens": n_tokens, "bytes": c["bytes"], "documents": c["documents"]}
        write_text(out / TOKENIZER_FILE, hf_json)
        write_json(out / META, record)  # last: the folder is whole once this exists
        clear_parts(parts)
        seconds = time.perf_counter() - t0
        total = record["train"]["bytes"] + record["val"]["bytes"]
        echo(f"{out}: {record['train']['tokens']:,} train + {record['val']['tokens']:,} val tokens "
             f"({identity}, {dtype}) from {total / 1e6:,.1f} MB in {seconds:.1f} s"
             + (f"; {skipped} part(s) kept from an earlier run" if skipped else ""))
        return record
