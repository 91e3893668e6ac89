"""A text corpus tokenized once: ``data.text.source`` as token files in a cache folder.

The first stage, arm, resume or evaluation that reads a text corpus writes its
tokens into ``CACHE/NAME-FINGERPRINT/`` with `ncalm tokenize`'s writer
(``train.bin``, ``val.bin``, ``tokenizer.json``, then ``meta.json`` last, under
the folder's lock; a folder without a whole ``meta.json`` is never read); every
later one memory-maps that folder like ``bin:DIR`` data. The corpus is not read,
split or tokenized again, and BPE is trained once.

The fingerprint covers what the tokens depend on: the source files (path, size,
mtime; a Hugging Face hub dataset by its name), the tokenizer and its settings, the split and its caps (``val_percent``,
``max_bytes``, ``max_val_bytes``) and :data:`FORMAT`. A changed file or setting
makes a new folder; old ones stay until deleted. The documents are
:func:`ncalm.data.corpus.documents`' and the tokenizer a ByteTokenizer or
BPETokenizer.train on the training side, so the tokens are those of
encoding the documents in memory (tests/test_text_cache.py).
"""
from __future__ import annotations

import functools
import os
import re
import sys
import time
from pathlib import Path

from ncalm.data.config import TextConfig
from ncalm.data.corpus import documents
from ncalm.data.tokenize import (GPT2_FILES_ENV, TokenizeConfig, fingerprint, gpt2_dir, is_up_to_date, tokenize,
                                 tokenizer_identity)
from ncalm.lm.tokenizer import load_tokenizer
from ncalm.locks import FolderBusy
from ncalm.settings import SettingError

FORMAT = 1  # raise when the tokens a folder holds for the same settings change
CACHE_ENV = "NCALM_CACHE"
CHUNK_BYTES = 4 << 20  # text per work item of the writer (tests lower it to cut documents)


def cache_root(setting: str = "") -> Path:
    """Where tokenized corpora live: ``data.text.cache``, else ``$NCALM_CACHE/tokens``, else
    ``~/.cache/ncalm/tokens``."""
    if setting:
        return Path(setting).expanduser()
    env = os.environ.get(CACHE_ENV)
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "ncalm") / "tokens"


def check_tokenizer_files(text: TextConfig) -> None:
    """A SettingError keyed ``tokenizer`` where ``text`` would tokenize with gpt2 and GPT-2's files are not at
    hand: checked before a run (an experiment's first stage would train first), and where they are read."""
    if text.tokenizer != "gpt2":
        return
    if not os.environ.get(GPT2_FILES_ENV):
        raise SettingError("tokenizer", f"gpt2 needs GPT-2's vocab.bpe and encoder.json (no download): "
                                        f"set ${GPT2_FILES_ENV} to the folder holding them")
    try:
        gpt2_dir()
    except SettingError as exc:  # keyed by tokenize's gpt2_files, which a stage has not: the folder is $ENV's
        raise SettingError("tokenizer", f"gpt2: ${GPT2_FILES_ENV}: {exc.message}") from None


def cached_tokens(text: TextConfig, tokenizer=None, progress: bool = True, make: bool = True) -> Path | None:
    """The cache folder holding ``text.source`` tokenized as ``text`` says; written now if missing
    (``make``; else None).

    ``tokenizer`` (a resumed run's, or the one an init checkpoint's embeddings
    were trained with) is used instead of making one: the folder of
    ``text.tokenizer`` when that made the same tokenizer, else a folder keyed by
    the given tokenizer itself. A SettingError names its key within ``text`` (ncalm.settings.within).
    """
    if tokenizer is None:
        check_tokenizer_files(text)
    cfg = TokenizeConfig(source=text.source, tokenizer=text.tokenizer, bpe_vocab=text.bpe_vocab,
                         val_percent=text.val_percent, max_bytes=text.max_bytes,
                         max_val_bytes=text.max_val_bytes, chunk_bytes=CHUNK_BYTES,
                         progress=progress, force=True)  # a folder named by its fingerprint: ours to rewrite
    # The documents and caps of ncalm.data.corpus, not `ncalm tokenize`'s own split.
    extra = {"split": "corpus", "max_val_bytes": text.max_val_bytes, "format": FORMAT}
    given = None
    if tokenizer is not None:
        if tokenizer.kind == "byte":
            cfg = cfg.replace(tokenizer="byte")
        else:
            given = tokenizer.to_hf_json()
            try:
                own = _folder(text, cfg, extra, None)
            except SettingError:  # an hf:PATH no longer there: the given tokenizer has a folder of its own
                own = None
            if own and is_up_to_date(*own) and load_tokenizer(own[0]).to_dict() == tokenizer.to_dict():
                return own[0]  # the tokenizer of text.tokenizer, as a resume of a run on it has
    folder, fp = _folder(text, cfg, extra, given)
    if is_up_to_date(folder, fp):  # no lock to read a finished folder
        return folder
    if not make:
        return None

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError("cache", f"cannot write the token cache {folder.parent}: {exc.strerror or exc}; "
                                         f"set it (or ${CACHE_ENV}) to a writable folder") from None
    train, val = documents(text.source, text.val_percent, text.max_bytes, text.max_val_bytes)

    def docs():
        yield from (("train", t) for t in train)
        yield from (("val", t) for t in val)

    # A process per chunk of text, at most one per core: a small corpus is not worth a pool.
    n_chars = sum(map(len, train)) + sum(map(len, val))
    cfg = cfg.replace(out=str(folder), workers=max(1, min(os.cpu_count() or 1, n_chars // CHUNK_BYTES)))
    note = functools.partial(print, "text cache:", file=sys.stderr)
    waiting = False
    while True:
        try:
            tokenize(cfg, echo=note, docs=docs, extra=extra, tokenizer_json=given)
            return folder
        except FolderBusy:
            if not waiting:  # another stage or experiment is tokenizing the same corpus: use its folder
                note(f"{folder} is being written by another process; waiting for it")
            waiting = True
            time.sleep(1)


def _folder(text: TextConfig, cfg: TokenizeConfig, extra: dict, given: str | None) -> tuple[Path, str]:
    """(folder, fingerprint) for these settings: a readable name from the source, then the fingerprint."""
    fp = fingerprint(cfg, tokenizer_identity(cfg, given), extra)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text.source.rstrip("/")).name or text.source).strip("_.")[:40]
    return cache_root(text.cache) / f"{name or 'corpus'}-{fp[:20]}", fp

