"""Perplexity and bits per byte of a language model on held-out documents.

The documents become one token stream ``EOS d1 EOS d2 EOS ...`` (the leading
EOS gives the first token a context; each document's EOS is predicted like
any token, as in training). The stream is cut into windows of ``seq_len``
predictions with no overlap and no shared context, so every token after the
leading EOS is predicted exactly once.

    bits per byte = total nats / (ln 2 * total UTF-8 bytes of the documents)

The byte count does not depend on the tokenizer, which makes byte-level and
BPE models comparable; EOS tokens add nats but no bytes.

Text that is already tokens (a nanoGPT-layout ``val.bin``) is evaluated by
:func:`evaluate_tokens`, which counts each token's bytes from the tokenizer's
vocabulary instead of decoding.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ncalm.eval.config import BpbConfig
from ncalm.eval.stats import perplexity


@dataclass
class LMEval:
    nats: float        # summed cross entropy over all predicted tokens
    tokens: int        # predicted tokens (document tokens + one EOS per document)
    bytes: int         # UTF-8 bytes of the evaluated documents
    documents: int

    @property
    def loss(self) -> float:
        """Mean cross entropy per token (nats)."""
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        return perplexity(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return self.nats / (math.log(2) * self.bytes)

    def to_dict(self) -> dict:
        return {**asdict(self), "loss": self.loss, "perplexity": self.perplexity,
                "bits_per_byte": self.bits_per_byte}


@torch.no_grad()
def evaluate_lm(model, tokenizer, documents: Iterable[str], seq_len: int | None = None,
                batch_size: int = BpbConfig.batch_size, device: str | torch.device = "cpu",
                max_bytes: int | None = None, progress: bool = False) -> LMEval:
    """Summed loss, perplexity and bits per byte of ``model`` on ``documents``.

    ``seq_len`` defaults to the model's ``max_seq_len``. With ``max_bytes``,
    documents are added until their UTF-8 total reaches it and the last one is kept
    whole, so the byte count stays exact (and may exceed ``max_bytes``).
    ``progress`` shows a bar over the windows on stderr.
    """
    seq_len = _check_options(model, seq_len, batch_size, max_bytes)
    ids = [tokenizer.eos_id]
    n_bytes = n_docs = 0
    for doc in documents:
        if max_bytes is not None and n_docs and n_bytes >= max_bytes:
            break
        ids += [*tokenizer.encode(doc), tokenizer.eos_id]
        n_bytes += len(doc.encode("utf-8"))
        n_docs += 1
    if n_bytes == 0:
        raise ValueError("documents: no text to evaluate (empty source or only empty documents)")
    return _evaluate(model, np.asarray(ids, dtype=np.int64), n_bytes, n_docs, seq_len, batch_size, device, progress)


def token_bytes(tokenizer) -> np.ndarray:
    """UTF-8 bytes that each token id stands for; 0 for EOS and other special tokens.

    Exact whatever the ids hold (a character cut in two, invalid UTF-8), which
    decoding with replacement characters would not be.
    """
    spec = json.loads(tokenizer.to_hf_json())  # the byte tokenizer's too: byte-level BPE without merges
    if (spec.get("pre_tokenizer") or {}).get("type") != "ByteLevel":
        raise ValueError("bytes per token are known only for byte-level BPE (ncalm's own)")
    table = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for text, i in spec["model"]["vocab"].items():
        table[i] = len(text)  # byte-level BPE writes one character per byte
    for special in spec.get("added_tokens", []):
        table[special["id"]] = 0
    return table


_CHUNK = 1 << 20  # tokens read at a time, so that a cap reads only a prefix of a large file


def _byte_prefix(ids, table: np.ndarray, max_bytes: int | None) -> tuple[int, int]:
    """``(tokens, bytes)`` of the shortest prefix of ``ids`` holding ``max_bytes`` bytes (None: all)."""
    n_tokens = n_bytes = 0
    for start in range(0, len(ids), _CHUNK):
        part = np.asarray(ids[start:start + _CHUNK], dtype=np.int64)
        if part.min() < 0 or part.max() >= len(table):
            bad = part.max() if part.max() >= len(table) else part.min()
            raise ValueError(f"token id {bad} at position {start + int(np.argmax(part == bad))} is outside "
                             f"the tokenizer's vocabulary of {len(table)}")
        sizes = np.cumsum(table[part])
        if max_bytes is not None and n_bytes + sizes[-1] >= max_bytes:
            k = int(np.searchsorted(sizes, max_bytes - n_bytes)) + 1  # first token reaching the cap, included
            return n_tokens + k, n_bytes + int(sizes[k - 1])
        n_tokens += len(part)
        n_bytes += int(sizes[-1])
    return n_tokens, n_bytes


@torch.no_grad()
def evaluate_tokens(model, tokenizer, ids, seq_len: int | None = None, batch_size: int = BpbConfig.batch_size,
                    device: str | torch.device = "cpu", max_bytes: int | None = None,
                    progress: bool = False, n_bytes: int | None = None) -> LMEval:
    """:func:`evaluate_lm` for text that is already tokens ``d1 EOS d2 EOS ...`` (e.g. a val.bin memmap).

    ``tokenizer`` must be the one that made ``ids``; bytes are counted per token
    (:func:`token_bytes`). With ``max_bytes`` the stream ends at the first token
    that reaches it, possibly inside a document. ``documents`` counts the
    documents begun. A leading EOS is added, as in :func:`evaluate_lm`, unless
    the stream starts with one. ``n_bytes``, the bytes behind all of ``ids`` (meta.json's), evaluates
    them all with that count instead, for any tokenizer (``max_bytes`` must then be None).
    """
    seq_len = _check_options(model, seq_len, batch_size, max_bytes)
    if n_bytes is not None:
        if max_bytes is not None:
            raise ValueError("evaluate_tokens: n_bytes counts all of ids; it cannot go with max_bytes")
        n_tokens = len(ids)
    else:
        n_tokens, n_bytes = _byte_prefix(ids, token_bytes(tokenizer), max_bytes)
    if n_bytes == 0:
        raise ValueError("tokens: no text to evaluate (empty, or only end-of-text tokens)")
    eos = tokenizer.eos_id
    text = np.asarray(ids[:n_tokens], dtype=np.int64)
    stream = text if text[0] == eos else np.concatenate([[eos], text])
    n_docs = int(np.count_nonzero(text == eos)) + int(text[-1] != eos)
    return _evaluate(model, stream, n_bytes, n_docs, seq_len, batch_size, device, progress)


def evaluate_bin(model, tokenizer, spec: str, seq_len: int | None = None, batch_size: int = BpbConfig.batch_size,
                 device: str | torch.device = "cpu", max_bytes: int | None = None,
                 progress: bool = False) -> LMEval:
    """:func:`evaluate_tokens` on the val.bin of a token folder (``bin:DIR``) made with ``tokenizer``.

    All of val.bin when ``max_bytes`` does not cut it, with the UTF-8 byte count that
    ``ncalm tokenize`` stored in meta.json; else its prefix, bytes counted per token.
    """
    from ncalm.data.tokens import bin_val_bytes, bin_validation

    val, shards_tokenizer = bin_validation(spec, tokenizer.vocab_size)
    # Ids mean nothing without the tokenizer that made them: the bytes, and so bits per byte, would be made up.
    if shards_tokenizer is None:
        raise ValueError(f"{spec}: no tokenizer.json beside val.bin, so its ids cannot be counted in bytes; "
                         "evaluate a text corpus instead")
    if shards_tokenizer.to_dict() != tokenizer.to_dict():
        raise ValueError(f"{spec}: its tokenizer.json is not the checkpoint's tokenizer")
    stored = bin_val_bytes(spec)
    whole = stored is not None and (max_bytes is None or max_bytes >= stored)
    return evaluate_tokens(model, tokenizer, val, seq_len=seq_len, batch_size=batch_size, device=device,
                           max_bytes=None if whole else max_bytes, progress=progress,
                           n_bytes=stored if whole else None)


def evaluate_text(model, tokenizer, text, seq_len: int | None = None, batch_size: int = BpbConfig.batch_size,
                  device: str | torch.device = "cpu", max_bytes: int | None = None, progress: bool = False) -> LMEval:
    """:func:`evaluate_lm` on the validation documents of ``text`` (a TextConfig: corpus and split), whole
    documents until ``max_bytes`` (None: all), as ``validation_documents(source, val_percent, max_bytes)``.

    Read from the corpus's token cache (ncalm.data.cache) when it was tokenized with ``tokenizer`` and holds
    those documents: the same tokens and byte count, nothing read or tokenized. Else from the text.
    """
    from ncalm.data.cache import cached_tokens
    from ncalm.data.corpus import validation_documents
    from ncalm.data.tokens import bin_val_bytes, bin_validation

    seq_len = _check_options(model, seq_len, batch_size, max_bytes)
    folder = cached_tokens(text, tokenizer, make=False)
    stored = bin_val_bytes(str(folder)) if folder is not None else None
    # The folder holds the first documents up to text.max_val_bytes, or all when they were fewer.
    holds = stored is not None and (text.max_val_bytes is None or stored < text.max_val_bytes
                                    or (max_bytes is not None and max_bytes <= text.max_val_bytes))
    ids = bin_validation(str(folder), tokenizer.vocab_size)[0] if holds else []
    cut = holds and max_bytes is not None and max_bytes < stored
    table = _exact_byte_table(tokenizer, ids, stored) if cut else None
    if not holds or (cut and table is None):  # no cache of them, or bytes per token unknown: read the text
        val = validation_documents(text.source, text.val_percent, max_bytes)
        return evaluate_lm(model, tokenizer, val, seq_len, batch_size, device, progress=progress)
    n_tokens, n_bytes, eos = len(ids), stored, tokenizer.eos_id
    if cut:
        # Up to the token that reaches max_bytes, then to the end (EOS) of its document; ids of a literal
        # "<|endoftext|>" in the text are not EOS, so each EOS ends a document (the last one ends the file).
        n_tokens, n_bytes = _byte_prefix(ids, table, max_bytes)
        end = len(ids)
        for start in range(n_tokens, len(ids), _CHUNK):
            hits = np.flatnonzero(np.asarray(ids[start:start + _CHUNK]) == eos)
            if hits.size:
                end = start + int(hits[0])
                break
        n_bytes += int(table[np.asarray(ids[n_tokens:end], dtype=np.int64)].sum())
        n_tokens = min(end + 1, len(ids))
    stream = np.concatenate([[eos], np.asarray(ids[:n_tokens], dtype=np.int64)])
    n_docs = int(np.count_nonzero(stream[1:] == eos))
    return _evaluate(model, stream, n_bytes, n_docs, seq_len, batch_size, device, progress)


def _exact_byte_table(tokenizer, ids, stored: int) -> np.ndarray | None:
    """:func:`token_bytes` when it accounts for every byte of ``ids`` (``stored`` of them, counted from the
    text when it was tokenized); None when bytes per token are unknown (a tokenizer that is not byte-level)
    or miscounted (e.g. an added token that is not special, which token_bytes counts as 0)."""
    try:
        table = token_bytes(tokenizer)
    except ValueError:
        return None
    return table if _byte_prefix(ids, table, None)[1] == stored else None


def _check_options(model, seq_len: int | None, batch_size: int, max_bytes: int | None) -> int:
    """``seq_len`` resolved (None: the model's ``max_seq_len``); ValueError for a bad option."""
    max_len = getattr(getattr(model, "cfg", None), "max_seq_len", None)
    seq_len = max_len if seq_len is None else seq_len  # not `or`: 0 is an error, not "the default"
    if not seq_len or seq_len < 1 or (max_len and seq_len > max_len):
        raise ValueError(f"seq_len must be in [1, {max_len}] (the model's max_seq_len), got {seq_len}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1 or None (no cap), got {max_bytes}")
    return seq_len


def _evaluate(model, stream: np.ndarray, n_bytes: int, n_docs: int, seq_len: int, batch_size: int, device,
              progress: bool) -> LMEval:
    """Summed cross entropy of every token of ``stream`` after the first, in windows of ``seq_len``, with the
    caller's counts of the bytes and documents behind them."""
    n_pred = len(stream) - 1
    n_windows = math.ceil(n_pred / seq_len)
    # Window w predicts stream[w*L+1 : w*L+L+1] from stream[w*L : w*L+L]; pad the last one.
    padded = np.full(n_windows * seq_len + 1, -100, dtype=np.int64)
    padded[: len(stream)] = stream
    inputs = np.lib.stride_tricks.sliding_window_view(padded[:-1], seq_len)[::seq_len]
    targets = np.lib.stride_tricks.sliding_window_view(padded[1:], seq_len)[::seq_len]
    was_training = model.training
    model.eval()
    nats = 0.0
    # A large validation set takes minutes on a CPU; the bar (stderr) shows it is moving.
    bar = tqdm(total=n_windows, desc="bpb", unit="window", disable=not progress, dynamic_ncols=True)
    try:
        for i in range(0, n_windows, batch_size):
            x = torch.from_numpy(inputs[i:i + batch_size].copy()).to(device)
            y = torch.from_numpy(targets[i:i + batch_size].copy()).to(device)
            x = x.clamp_min(0)  # padded inputs only feed ignored targets
            logits, _ = model(x)
            nats += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                    ignore_index=-100, reduction="sum").double().item()
            bar.update(len(x))
    finally:
        bar.close()
        model.train(was_training)
    return LMEval(nats=nats, tokens=n_pred, bytes=n_bytes, documents=n_docs)
