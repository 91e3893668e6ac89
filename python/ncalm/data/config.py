"""What a training stage reads: DataConfig, a tagged union over NCA, Dyck and text data.

``kind`` picks the table that counts (``nca``, ``dyck`` or ``text``); the
shared fields (sequence length, data seed, workers) apply to all.
"""
from __future__ import annotations

from dataclasses import dataclass

from ncalm.devices import device_setting
from ncalm.nca.config import PAPER_BAND, NCAConfig, check_seed
from ncalm.settings import Settings, SettingError, at_least, in_range, setting, table

DATA_KINDS = ("nca", "dyck", "text")
# Controls of NCA data (ncalm.data.controls, which says what each keeps and destroys).
CONTROLS = ("none", "shuffle-frames", "shuffle-tokens", "unigram", "fixed-rules")


def check_tokenizer(v: str) -> str | None:
    """A tokenizer setting's values (ncalm tokenize's and data.text's)."""
    return None if v in ("gpt2", "byte", "bpe") or (v.startswith("hf:") and len(v) > 3) else \
        "must be gpt2, byte, bpe or hf:PATH (a tokenizer.json or a folder holding one)"


@dataclass
class DyckConfig(Settings):
    k: int = setting(4, "bracket types", check=at_least(1), flags=("--dyck-k",))
    depth: int = setting(16, "maximum nesting depth", check=at_least(1), flags=("--dyck-depth",))


@dataclass
class TextConfig(Settings):
    SHORTHAND = "source"

    source: str | None = setting("stdlib", "stdlib (this Python's standard library), FILE/DIR/GLOB[,...], bin:DIR "
                                           "(train.bin/val.bin from `ncalm tokenize`, or nanoGPT's with meta.pkl), "
                                           "hf:NAME[:CONFIG], hf:SAVED_DIR or hf:FILE.jsonl; none: not set (the paper "
                                           "preset's language stage: a run refuses until it is given)",
                                 flags=("--text",))
    tokenizer: str = setting("byte", "byte-level, BPE trained on the corpus, gpt2 (tiktoken's GPT-2; its "
                                     "vocab.bpe and encoder.json from $NCALM_GPT2_FILES) or hf:PATH (a Hugging "
                                     "Face tokenizer.json with <|endoftext|>)", check=check_tokenizer,
                             flags=("--tokenizer",))
    bpe_vocab: int = setting(4096, "BPE vocabulary size (tokenizer bpe)", check=at_least(258), flags=("--bpe-vocab",))
    val_percent: float = setting(2.0, "percent of files held out for validation; where that is fewer than 5 "
                                      "files, that percent of each file's end instead",
                                 check=in_range(0, 100, open_low=True, open_high=True), flags=("--val-percent",))
    max_bytes: int | None = setting(None, "cap on training text in UTF-8 bytes, e.g. 20M (a split by whole files "
                                          "ends with the file that reaches it); unset = all",
                                    check=at_least(1), flags=("--max-bytes",))
    max_val_bytes: int | None = setting(1_000_000, "cap on validation text in UTF-8 bytes", check=at_least(1))
    vocab_size: int | None = setting(None, "vocabulary of .bin data without meta.json, meta.pkl or tokenizer.json",
                                     check=at_least(1))
    # Where, not what: a run resumed with another cache folder is the same run (trainer MAY_CHANGE).
    cache: str = setting("", "folder where a text corpus is tokenized once and memory-mapped by every later "
                             "stage, arm, resume and evaluation; empty: $NCALM_CACHE/tokens, else "
                             "~/.cache/ncalm/tokens (delete it to free the space)", flags=("--text-cache",))

    def corpus(self) -> str:
        """``source``; a SettingError keyed ``source`` where none is set (the paper preset leaves it to you)."""
        if self.source is None:
            raise SettingError("source", "not set: name your corpus (this key in --set or --config; --text in the "
                                         "stage commands and band); the paper's language stage read OpenWebText "
                                         "in GPT-2 tokens: `ncalm tokenize --text DIR --tokenizer gpt2 --out OWT`, "
                                         "then bin:OWT")
        return self.source


@dataclass
class DataConfig(Settings):
    """What the stage trains on. Only the table of the chosen ``kind`` matters."""

    # A plain value is a text corpus: language.data = "corpus/" (files written before the config tree), --set data=DIR.
    SHORTHAND = staticmethod(lambda source: {"kind": "text", "text": {"source": source}})

    kind: str = setting("nca", "what the stage trains on: nca (NCA token streams), dyck (Dyck bracket sequences) "
                               "or text", choices=DATA_KINDS, flags=("--data",))
    seq_len: int = setting(256, "tokens per training sequence", check=at_least(1), flags=("--seq-len",))
    seed: int = setting(0, "data seed: rules and initial states, Dyck draws, window order", check=check_seed,
                        flags=("--data-seed",))
    # A property of the data, not of the optimiser: runs with other batch sizes score on the same sequences.
    val_sequences: int = setting(64, "held-out sequences every evaluation scores (the first of the validation "
                                     "set; fewer where the held-out text is shorter)", check=at_least(1),
                                 flags=("--val-sequences",))
    workers: int = setting(0, "DataLoader worker processes (0 = in the training process)", check=at_least(0),
                           flags=("--workers",))
    nca: NCAConfig = table(NCAConfig, "NCA data (data.kind nca)", band=PAPER_BAND)
    pool_size: int = setting(0, "NCA rules per epoch (paper: 16000); 0 = a fresh rule for every sequence",
                             check=at_least(0), flags=("--pool-size",))
    epoch_sequences: int = setting(0, "sequences per rule-pool epoch, at least pool_size; 0 = pool_size",
                                   check=at_least(0), flags=("--epoch-sequences",))
    control: str = setting("none", "NCA data with its dynamics taken away, as a control: frames in random order "
                                   "(shuffle-frames), patch tokens shuffled within frames (shuffle-tokens), i.i.d. "
                                   "patch tokens at the NCA's frequencies (unigram), or epoch 0's rule pool forever "
                                   "(fixed-rules, needs pool_size)", choices=CONTROLS, flags=("--control",))
    gen_threads: int | None = setting(None, "NCA generator threads; unset = all cores", check=at_least(1),
                                      flags=("--gen-threads",))
    gen_device: str = setting("auto", "where NCA data is generated: cpu, cuda[:N], or auto (the GPU backend "
                                      "when training on a GPU with workers 0; same data either way)",
                              check=device_setting,
                              flags=("--gen-device",))
    dyck: DyckConfig = table(DyckConfig, "Dyck data (data.kind dyck)")
    text: TextConfig = table(TextConfig, "text data (data.kind text)")

    RENAMED = {"dyck_k": "dyck.k", "dyck_depth": "dyck.depth", "tokenizer": "text.tokenizer",
               "bpe_vocab": "text.bpe_vocab", "val_percent": "text.val_percent", "max_bytes": "text.max_bytes",
               "max_val_bytes": "text.max_val_bytes", "vocab_size": "text.vocab_size"}

    def validate(self) -> None:
        if self.nca.seq_len not in (self.seq_len, NCAConfig.seq_len):
            raise SettingError("nca.seq_len", f"{self.nca.seq_len} conflicts with seq_len={self.seq_len}; "
                                              "set seq_len only")
        if self.kind == "nca":
            try:
                self.nca_config()  # the core's limits on a sequence's length
            except SettingError as exc:
                raise SettingError("seq_len", exc.message) from None
        if self.kind == "nca" and self.seq_len < self.nca.frame_len:
            raise SettingError("seq_len", f"{self.seq_len} is shorter than one NCA frame ({self.nca.frame_len} "
                                          "tokens); the first frame is context only, so no target would be scored")
        if self.control != "none" and self.kind != "nca":
            raise SettingError("control", f"{self.control} is a control of NCA data, not of {self.kind} data")
        if self.control == "fixed-rules" and not self.pool_size:
            raise SettingError("control", "fixed-rules keeps epoch 0's rule pool, so it needs pool_size > 0")
        if self.pool_size and not self.epoch_sequences:
            self.epoch_sequences = self.pool_size  # each pool rule makes one sequence per epoch
        if self.epoch_sequences < self.pool_size:
            raise SettingError("epoch_sequences", f"must be >= pool_size={self.pool_size}, "
                                                  f"got {self.epoch_sequences}")

    def nca_config(self) -> NCAConfig:
        """The generator's config: the NCA table at this stage's sequence length."""
        return self.nca.replace(seq_len=self.seq_len)
