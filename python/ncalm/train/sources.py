"""Build the training :class:`~ncalm.data.sharding.Source` a :class:`DataConfig` describes."""
from __future__ import annotations

from ncalm.data import DyckSource, NCASource, language_source
from ncalm.train.config import DataConfig


def nca_config(cfg: DataConfig):
    from ncalm import NCAConfig

    overrides = dict(cfg.nca)
    if "seq_len" in overrides and overrides["seq_len"] != cfg.seq_len:
        raise ValueError(f"nca.seq_len={overrides['seq_len']} conflicts with seq_len={cfg.seq_len}")
    return NCAConfig.from_dict({**overrides, "seq_len": cfg.seq_len})


def generator_device(cfg: DataConfig, train_device: str) -> str:
    """Where NCA sequences are generated: the GPU backend needs workers=0 (no CUDA in forked workers)."""
    if cfg.gen_device == "cpu" or (cfg.gen_device == "auto" and not train_device.startswith("cuda")):
        return "cpu"
    if cfg.workers:
        if cfg.gen_device == "auto":
            return "cpu"
        raise ValueError(f"gen_device={cfg.gen_device!r} needs workers=0, got workers={cfg.workers}")
    from ncalm.nca.cuda import cuda_status

    usable, why = cuda_status()
    if not usable:
        if cfg.gen_device == "auto":
            return "cpu"
        raise ValueError(why)
    return train_device if train_device.startswith("cuda") else cfg.gen_device


def build_source(cfg: DataConfig, tokenizer=None, device: str = "cpu"):
    """``(source, tokenizer)``; tokenizer is None for NCA and Dyck data.

    Pass ``tokenizer`` to reuse one (a resumed run must keep its vocabulary);
    ``device`` is the training device (NCA generation may follow it).
    """
    if cfg.kind == "nca":
        return NCASource(nca_config(cfg), cfg.seed, cfg.pool_size, cfg.epoch_sequences, cfg.gen_threads,
                         generator_device(cfg, device)), None
    if cfg.kind == "dyck":
        return DyckSource(cfg.dyck_k, cfg.dyck_depth, cfg.seq_len, cfg.seed), None
    return language_source(cfg.text, cfg.seq_len, cfg.seed, tokenizer, cfg.tokenizer, cfg.bpe_vocab,
                           cfg.val_percent, cfg.max_bytes, cfg.max_val_bytes, cfg.vocab_size)
