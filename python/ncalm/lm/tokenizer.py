"""Tokenizers for the language stage: byte-level (default, no files) and local BPE.

Both expose ``vocab_size``, ``eos_id``, ``encode(text) -> list[int]``,
``decode(ids) -> str``, ``save(directory)`` and a plain-dict form
(``to_dict``) that checkpoints embed, so a checkpoint is self-contained.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ncalm.atomic_json import read_json, write_json

TOKENIZER_FILE = "tokenizer.json"
EOS_TEXT = "<|endoftext|>"


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255 and an end-of-text id 256."""

    kind = "byte"
    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        return {"type": "byte"}

    def save(self, directory: str | os.PathLike) -> Path:
        return _write(directory, self.to_dict())


def _import_tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise ImportError(
            "the BPE tokenizer needs the `tokenizers` package: pip install 'ncalm[bpe]' "
            "(or use the default byte tokenizer)") from exc
    return tokenizers


class BPETokenizer:
    """Byte-level BPE from the `tokenizers` library, trained locally (no downloads)."""

    kind = "bpe"

    def __init__(self, backend):
        self._tok = backend
        eos = backend.token_to_id(EOS_TEXT)
        if eos is None:
            raise ValueError(f"BPE tokenizer has no {EOS_TEXT} token")
        self.eos_id = eos
        self.vocab_size = backend.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096) -> "BPETokenizer":
        """Train on an iterator of documents. ``vocab_size`` counts the 256 byte symbols and EOS."""
        if vocab_size < 258:
            raise ValueError(f"BPE vocab_size must be >= 258 (256 bytes + EOS + 1 merge), got {vocab_size}")
        tk = _import_tokenizers()
        backend = tk.Tokenizer(tk.models.BPE())
        backend.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[EOS_TEXT], show_progress=False,
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(backend)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` as text: no end-of-text id, even for a literal ``<|endoftext|>`` in it."""
        if EOS_TEXT not in text:
            return self._tok.encode(text).ids
        # The backend turns the literal string into the EOS id wherever it appears
        # (and decode drops that id). Its pieces are plain text, and byte-level BPE
        # ids concatenate like the text: encode the parts around it, and it in two.
        literal = self._tok.encode(EOS_TEXT[:2]).ids + self._tok.encode(EOS_TEXT[2:]).ids
        ids = []
        for i, piece in enumerate(text.split(EOS_TEXT)):
            ids += (literal if i else []) + (self._tok.encode(piece).ids if piece else [])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids if int(i) != self.eos_id])

    def to_dict(self) -> dict:
        return {"type": "bpe", "json": self._tok.to_str()}

    def save(self, directory: str | os.PathLike) -> Path:
        return _write(directory, self.to_dict())


Tokenizer = ByteTokenizer | BPETokenizer


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Inverse of ``tok.to_dict()``."""
    kind = d.get("type")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer(_import_tokenizers().Tokenizer.from_str(d["json"]))
    raise ValueError(f"unknown tokenizer type {kind!r}; expected 'byte' or 'bpe'")


def load_tokenizer(directory: str | os.PathLike) -> Tokenizer:
    """Load the tokenizer that ``tok.save(directory)`` wrote."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}")
    return tokenizer_from_dict(read_json(path, ("type",), "tokenizer file"))


def make_tokenizer(kind: str, texts: Iterable[str] | None = None, vocab_size: int = 4096) -> Tokenizer:
    """``kind`` 'byte' or 'bpe' (the latter trained on ``texts``)."""
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        if texts is None:
            raise ValueError("a BPE tokenizer needs training texts")
        return BPETokenizer.train(texts, vocab_size)
    raise ValueError(f"tokenizer must be 'byte' or 'bpe', got {kind!r}")


def _write(directory, d: dict) -> Path:
    Path(directory).mkdir(parents=True, exist_ok=True)
    return write_json(Path(directory) / TOKENIZER_FILE, d, indent=None)
