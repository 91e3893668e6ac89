"""Tokenizers for the language stage: byte-level (default, no files) and local BPE.

Both expose ``vocab_size``, ``eos_id``, ``encode(text) -> list[int]``,
``decode(ids) -> str``, ``save(directory)`` and a plain-dict form
(``to_dict``) that checkpoints embed, so a checkpoint is self-contained.

``save`` writes a Hugging Face ``tokenizer.json`` (``to_hf_json``), which the
`tokenizers` library and ``transformers.PreTrainedTokenizerFast`` read with the
same ids; :func:`load_tokenizer` reads those, any HF tokenizer with an
``<|endoftext|>`` token (as a BPE tokenizer), and ncalm's older
``{"type": ...}`` files.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ncalm.atomic_json import write_text

TOKENIZER_FILE = "tokenizer.json"
EOS_TEXT = "<|endoftext|>"
# bpe_digest of GPT-2's tokenizer (what `--tokenizer gpt2` makes from its published files): a saved BPE
# tokenizer with this digest is GPT-2's, in checkpoints written before this digest was too.
GPT2_DIGEST = "5a45d60d47256b6b38e60f66a0832d967ad811e6ed00cb15a3bfc43715cbef20"


class _SavedAsHF:
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/tokenizer.json`` (:meth:`to_hf_json`, which HF's libraries read)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        return write_text(Path(directory) / TOKENIZER_FILE, self.to_hf_json())


class ByteTokenizer(_SavedAsHF):
    """UTF-8 bytes as ids 0..255 and an end-of-text id 256."""

    kind = name = "byte"
    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        return {"type": "byte"}

    def to_hf_json(self) -> str:
        """These ids as an HF tokenizer: byte-level BPE without merges, each byte its own id.

        Unlike :meth:`encode`, HF turns a literal ``<|endoftext|>`` in the text into the EOS id.
        """
        return byte_level_bpe_json(_BYTE_VOCAB, [], self.eos_id)


def byte_level_bpe_json(vocab: dict[str, int], merges: list[str], eos_id: int) -> str:
    """The Hugging Face ``tokenizer.json`` of a byte-level BPE (GPT-2's layout), EOS_TEXT its token ``eos_id``."""
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": eos_id, "content": EOS_TEXT, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", **byte_level}, "post_processor": None,
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges}})


def _byte_vocab() -> dict[str, int]:
    # GPT-2's bytes_to_unicode: the printable stand-in of each byte that HF's ByteLevel
    # pre-tokenizer maps it to (non-printable bytes to 256, 257, ... in byte order).
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    extra = iter(range(256, 512))
    return {chr(b if b in printable else next(extra)): b for b in range(256)}


_BYTE_VOCAB = _byte_vocab()


def _import_tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise ImportError(
            "the BPE tokenizer needs the `tokenizers` package: pip install 'ncalm[bpe]' "
            "(or use the default byte tokenizer)") from exc
    return tokenizers


class BPETokenizer(_SavedAsHF):
    """Byte-level BPE from the `tokenizers` library, trained locally (no downloads)."""

    kind = "bpe"

    def __init__(self, backend):
        self._tok = backend
        eos = backend.token_to_id(EOS_TEXT)
        if eos is None:
            raise ValueError(f"tokenizer has no {EOS_TEXT} token")  # any tokenizers model, not only BPE
        self.eos_id = eos
        self.vocab_size = backend.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> "BPETokenizer":
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

    @functools.cached_property
    def name(self) -> str:
        """The data.text.tokenizer value of this tokenizer: gpt2 for GPT-2's, else bpe (one trained on a corpus,
        or an hf:PATH). ``kind`` stays bpe for both: it is part of the data identity that resumes compare."""
        return "gpt2" if bpe_digest(self.to_hf_json()) == GPT2_DIGEST else "bpe"

    def to_dict(self) -> dict:
        return {"type": "bpe", "json": self._tok.to_str()}

    def to_hf_json(self) -> str:
        return self._tok.to_str()


Tokenizer = ByteTokenizer | BPETokenizer


def bpe_digest(hf_json: str) -> str:
    """A digest of what decides a byte-level BPE tokenizer's ids (vocabulary, merges, added tokens, normalizer and
    pre-tokenizer) in its Hugging Face ``tokenizer.json``, not of the file's layout, which differs between
    versions of `tokenizers` (merges as "a b" strings or as pairs)."""
    d = json.loads(hf_json)
    model = d.get("model") or {}
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    added = sorted((t.get("id"), t.get("content")) for t in d.get("added_tokens") or [])
    what = [sorted((model.get("vocab") or {}).items()), merges, added, d.get("normalizer"), d.get("pre_tokenizer")]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Inverse of ``tok.to_dict()``."""
    kind = d.get("type")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer(_import_tokenizers().Tokenizer.from_str(d["json"]))
    raise ValueError(f"unknown tokenizer type {kind!r}; expected 'byte' or 'bpe'")


def load_tokenizer(directory: str | os.PathLike) -> Tokenizer:
    """The tokenizer in ``directory/tokenizer.json``: HF's format (what ``tok.save`` writes) or ncalm's old one."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}")
    text = path.read_text()
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupt tokenizer file {path}: {exc}") from None
    if "type" in d:  # ncalm's format before HF's: {"type": "byte"} or {"type": "bpe", "json": ...}
        return tokenizer_from_dict(d)
    if "model" not in d:
        raise ValueError(f"{path} is neither a Hugging Face tokenizer.json (no 'model') nor an ncalm tokenizer")
    model, added = d["model"], [(t.get("id"), t.get("content")) for t in d.get("added_tokens") or []]
    if (model.get("vocab") == _BYTE_VOCAB and not model.get("merges") and added == [(256, EOS_TEXT)]
            and d.get("normalizer") is None and (d.get("pre_tokenizer") or {}).get("type") == "ByteLevel"):
        return ByteTokenizer()
    tk = _import_tokenizers()
    try:
        return BPETokenizer(tk.Tokenizer.from_str(text))
    except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
        raise ValueError(f"{path}: {exc}") from None

