"""Language data as a :class:`~ncalm.data.sharding.Source` over flat token arrays.

The training array is cut into non-overlapping windows of ``seq_len + 1``
tokens (stride ``seq_len``). Epoch ``e`` visits every window once in an order
fixed by ``(seed, e)``; item ``i`` is window ``perm_e[i % n_windows]`` with
``e = i // n_windows``. Validation is the first windows of the validation
array, in order.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ncalm.atomic_json import read_json
from ncalm.data.cache import cached_tokens
from ncalm.data.config import DataConfig, TextConfig
from ncalm.data.corpus import hf_local_files, local_files, stdlib_files
from ncalm.data.shard_check import FORMAT, MANIFEST
from ncalm.data.sharding import chunks, shifted_pairs
from ncalm.data.tokenize import META
from ncalm.lm.checkpoint import file_sha256
from ncalm.lm.tokenizer import TOKENIZER_FILE, load_tokenizer
from ncalm.settings import SettingError


class TokenSource:
    """Windows of flat train/val token arrays (numpy or memmap)."""

    def __init__(self, train: np.ndarray, val: np.ndarray, vocab_size: int, seq_len: int,
                 seed: int = DataConfig.seed, describe: dict | None = None):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.train, self.val = train, val
        self.vocab_size, self.seq_len, self.seed = vocab_size, seq_len, seed
        self.n_windows = (len(train) - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"training data has {len(train)} tokens, fewer than seq_len + 1 = {seq_len + 1}")
        self._info = describe or {}
        self._perm_epoch, self._perm = -1, None

    def _window(self, array: np.ndarray, w: int) -> np.ndarray:
        return np.asarray(array[w * self.seq_len: w * self.seq_len + self.seq_len + 1], dtype=np.int64)

    def items(self, indices: np.ndarray):
        rows = []
        for i in np.asarray(indices, dtype=np.int64):
            epoch, j = divmod(int(i), self.n_windows)
            if epoch != self._perm_epoch:
                self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
                self._perm_epoch = epoch
            rows.append(self._window(self.train, int(self._perm[j])))
        return shifted_pairs(rows)

    def val_batches(self, batch_size: int, sequences: int):
        available = (len(self.val) - 1) // self.seq_len
        if available < 1:
            raise ValueError(f"validation data has {len(self.val)} tokens: not one sequence of "
                             f"{self.seq_len + 1}; lower seq_len or hold out more text")
        return [shifted_pairs([self._window(self.val, int(w)) for w in ids])
                for ids in chunks(np.arange(min(sequences, available)), batch_size)]

    def describe(self) -> dict:
        return {"kind": "text", "seq_len": self.seq_len, "seed": self.seed,
                "train_tokens": int(len(self.train)), "val_tokens": int(len(self.val)), **self._info}


def encode_documents(docs: list[str], tokenizer) -> np.ndarray:
    """Documents joined into one array, each followed by the end-of-text id (in memory: the reference
    that the text cache's files are tested against)."""
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.int32
    eos = np.asarray([tokenizer.eos_id], dtype=dtype)
    parts = []
    for doc in docs:
        if tokenizer.kind == "byte":  # same ids as tokenizer.encode, without a Python list per byte
            ids = np.frombuffer(doc.encode("utf-8"), dtype=np.uint8).astype(dtype)
        else:
            ids = np.asarray(tokenizer.encode(doc), dtype=dtype)
        parts += [ids, eos]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _bin_files(spec: str) -> tuple[Path, Path, Path]:
    """(directory, train.bin, val.bin) of a nanoGPT-layout spec; FileNotFoundError if one is missing."""
    root = _bin_path(spec)
    if root.suffix == ".bin":
        root = root.parent
    train_path, val_path = root / "train.bin", root / "val.bin"
    for p in (train_path, val_path):
        if not p.is_file():
            _not_nca_shards(root)
            raise FileNotFoundError(f"nanoGPT-layout data needs {p}")
    return root, train_path, val_path


def _not_nca_shards(path: Path) -> None:
    """Refuse the output folder of `ncalm generate` as text: its manifest.json would be read as a document (or,
    as bin:DIR, it would lack train.bin). A SettingError keyed ``source``, within the caller's text table."""
    manifest = path / MANIFEST
    try:
        nca = manifest.is_file() and read_json(manifest).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object: not generate's
        return
    if nca:
        raise SettingError("source", f"{path} holds NCA token shards written by `ncalm generate` ({MANIFEST}), not "
                                     f"text: they are for training outside ncalm (ncalm prepretrain generates its "
                                     f"NCA data itself); give a text corpus, or token files (train.bin, val.bin)")


def check_corpus(spec: str) -> None:
    """FileNotFoundError now, not when a stage starts, for local data that is not there.

    stdlib is always there; hf: datasets are only looked up when read. A SettingError is keyed ``source``.
    """
    if spec == "stdlib" or spec.startswith("hf:"):
        return
    _not_nca_shards(_bin_path(spec))
    if is_bin_spec(spec):
        _bin_files(spec)
    else:
        local_files(spec)


def bin_source(spec: str, seq_len: int, seed: int, vocab_size: int | None, info: dict | None = None,
               tokenizer=None):
    """Token files: a directory with train.bin and val.bin (``ncalm tokenize``'s, or nanoGPT's), or ``bin:DIR``.

    ``info`` replaces the data's identity in ``describe()`` (a text corpus's, for its cached folder);
    ``tokenizer``: the folder's own, already loaded by the caller."""
    root, train_path, val_path = _bin_files(spec)
    tokenizer = tokenizer or _shards_tokenizer(root)
    meta_vocab, dtype = bin_meta(root)
    if vocab_size is None:
        vocab_size = meta_vocab or (tokenizer.vocab_size if tokenizer else None)
    if vocab_size is None:
        # A guess (nanoGPT's 50304) would train a byte-level folder with an output layer 200x too wide.
        raise ValueError(f"{root}: the vocabulary of its token files is unknown (no meta.json, meta.pkl or "
                         f"tokenizer.json): set data.text.vocab_size, or make the folder with `ncalm tokenize`")
    train, val = _checked_tokens(train_path, vocab_size, dtype), _checked_tokens(val_path, vocab_size, dtype)
    info = info or {"data": f"bin:{root}", FILES: files_digest(spec)}
    return TokenSource(train, val, vocab_size, seq_len, seed, info), tokenizer


FILES = "files"  # the key of files_digest in a source's describe(), and so in a checkpoint's spec["data"]


def files_digest(spec: str) -> str:
    """A digest of the data behind ``spec`` as it is, not where or when it sits: each file's corpus key
    (its path relative to the spec's folder or pattern, as the split keys it: the same on every machine,
    from every copy) and size; for token files, train.bin's and val.bin's sizes and val.bin's content.

    Each run records it, so that evaluation notices data changed or replaced since training. A corpus
    file edited to the same size is not noticed: catching it would mean reading the whole corpus (it may
    be gigabytes) at every start and evaluation, where names and sizes are one stat per file."""
    if is_bin_spec(spec):
        _, train_path, val_path = _bin_files(spec)
        # val.bin is what eval bpb evaluates, and every reader already passes over it in full
        # (_checked_tokens' max); hashing it adds about one more read (~1 GB/s), so an edit of it is
        # caught even at the same size. train.bin, often gigabytes, is named by its size only.
        stamps = [["train.bin", train_path.stat().st_size],
                  ["val.bin", val_path.stat().st_size, file_sha256(val_path).hexdigest()]]
    elif spec.startswith("hf:"):  # a local dataset by its files, a hub one by its name
        local = hf_local_files(spec)
        stamps = [[p.relative_to(local[0]).as_posix(), p.stat().st_size] for p in local[1]] if local else [spec]
    else:
        stamps = [[k, p.stat().st_size] for k, p in (stdlib_files() if spec == "stdlib" else local_files(spec))]
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]


def bin_validation(spec: str, vocab_size: int):
    """(val.bin tokens, the shards' tokenizer or None) without reading train.bin (evaluation)."""
    root, _, val_path = _bin_files(spec)
    return _checked_tokens(val_path, vocab_size, bin_meta(root)[1]), _shards_tokenizer(root)


def bin_val_bytes(spec: str) -> int | None:
    """UTF-8 bytes of the text behind val.bin, as ``ncalm tokenize`` stored them in meta.json (None: unknown)."""
    meta = _bin_files(spec)[0] / META
    try:
        n = read_json(meta)["val"]["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return n if isinstance(n, int) and n > 0 else None


def bin_meta(root: Path) -> tuple[int | None, np.dtype]:
    """(vocabulary or None, token dtype) from ``meta.json`` (ncalm tokenize's) or nanoGPT's ``meta.pkl``."""
    meta, pkl = root / META, root / "meta.pkl"
    if meta.is_file():
        d = read_json(meta)
    elif pkl.is_file():
        import pickle  # nanoGPT's prepare.py writes {'vocab_size', 'itos', 'stoi'}; the folder is the user's own

        d = pickle.loads(pkl.read_bytes())
    else:
        return None, np.dtype(np.uint16)
    vocab = d.get("vocab_size") if isinstance(d, dict) else None
    if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 1:
        raise ValueError(f"{meta if meta.is_file() else pkl} has no integer 'vocab_size' >= 1")
    dtype = d.get("dtype", "uint16")
    if dtype not in ("uint16", "uint32"):
        raise ValueError(f"{meta}: dtype must be uint16 or uint32, got {dtype!r}")
    for split in ("train", "val"):  # ncalm tokenize's counts: the files must be the ones it describes
        record = d.get(split)
        n = record.get("tokens") if isinstance(record, dict) else None
        path = root / f"{split}.bin"
        if isinstance(n, int) and path.is_file() and path.stat().st_size != n * np.dtype(dtype).itemsize:
            raise ValueError(f"{meta} describes {n:,} {split} tokens but {path.name} holds "
                             f"{path.stat().st_size // np.dtype(dtype).itemsize:,}: not the files it was written "
                             "with (run `ncalm tokenize` again)")
    return vocab, np.dtype(dtype)


def _shards_tokenizer(root: Path):
    return load_tokenizer(root) if (root / TOKENIZER_FILE).is_file() else None


def _checked_tokens(path: Path, vocab_size: int, dtype=np.uint16) -> np.memmap:
    dtype, size = np.dtype(dtype), path.stat().st_size
    if size == 0 or size % dtype.itemsize:
        raise ValueError(f"{path} is {'empty' if size == 0 else f'{size} bytes, not whole {dtype} tokens'}")
    tokens = np.memmap(path, dtype=dtype, mode="r")
    # Token files carry no vocabulary of their own: an id past it would be an
    # IndexError (or a CUDA assert) at whichever batch first samples it.
    top = int(tokens.max())  # one pass over the file, once
    if top >= vocab_size:
        raise ValueError(f"{path} holds token id {top}, outside the vocabulary of {vocab_size} "
                         f"(from meta.json, meta.pkl, the tokenizer or data.vocab_size)")
    return tokens


def _bin_path(spec: str) -> Path:
    return Path(spec.removeprefix("bin:")).expanduser()


def is_bin_spec(spec: str) -> bool:
    p = _bin_path(spec)
    return spec.startswith("bin:") or p.suffix == ".bin" or (p.is_dir() and (p / "train.bin").is_file())


def language_source(text: TextConfig, seq_len: int = DataConfig.seq_len, seed: int = DataConfig.seed, tokenizer=None,
                    progress: bool = True):
    """``(TokenSource, tokenizer)`` for ``text``'s corpus (see ncalm.data.corpus) or token files (``bin:DIR``).

    A corpus is tokenized once into the text cache (``text.cache``: see
    ncalm.data.cache), then memory-mapped. ``tokenizer`` reuses an existing
    tokenizer (e.g. from a checkpoint being resumed); otherwise one of
    ``text.tokenizer`` is made (BPE is trained on the training documents).
    Tokenizer is None for .bin data without one.
    """
    if is_bin_spec(text.corpus()):  # refused by key when no corpus is set
        return bin_source(text.source, seq_len, seed, text.vocab_size)
    if not text.source.startswith("hf:"):
        _not_nca_shards(Path(text.source).expanduser())
    folder = cached_tokens(text, tokenizer, progress)
    made = load_tokenizer(folder)  # once: bin_source takes it
    if tokenizer is not None and made.to_dict() != tokenizer.to_dict():  # cached_tokens chose by it: never expected
        raise SettingError("tokenizer", f"the token cache {folder} holds another tokenizer than the run's; "
                                        f"delete that folder to tokenize again")
    meta = read_json(folder / META)
    # The identity the in-memory path gave (a resume compares it), with the files' stamps (evaluation
    # compares them); where the cache lives is no part of it.
    info = {"data": text.source, "tokenizer": made.kind,
            "train_documents": meta["train"]["documents"], "val_documents": meta["val"]["documents"],
            "val_percent": text.val_percent, "max_bytes": text.max_bytes, FILES: files_digest(text.source)}
    source, _ = bin_source(str(folder), seq_len, seed, None, info, made)
    return source, tokenizer or made
