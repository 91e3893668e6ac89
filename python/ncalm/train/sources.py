"""Build the training :class:`~ncalm.data.sharding.Source` a :class:`DataConfig` describes."""
from __future__ import annotations

from ncalm.data.controls import ControlSource
from ncalm.data.dyck import DyckSource
from ncalm.data.nca import NCASource
from ncalm.data.tokens import language_source
from ncalm.data.config import DataConfig
from ncalm.devices import USE_CPU, no_cuda
from ncalm.settings import SettingError, within


def generator_device(cfg: DataConfig, train_device: str) -> str:
    """Where NCA sequences are generated: the GPU backend needs workers=0 (no CUDA in forked workers).
    A CUDA gen_device that cannot serve is a SettingError keyed within ``cfg`` (gen_device); auto is then the CPU."""
    if cfg.gen_device == "cpu" or (cfg.gen_device == "auto" and not train_device.startswith("cuda")):
        return "cpu"
    from ncalm import _core
    from ncalm.nca.cuda import cuda_status

    core = cfg.nca_config().core  # out of the try: a config error is no reason for auto to take the CPU
    try:
        if cfg.workers:
            raise SettingError("gen_device", f"{cfg.gen_device!r} needs workers=0 (no CUDA in forked workers), "
                                             f"got workers={cfg.workers}")
        usable, why = cuda_status(cpu=None)
        if not usable:
            raise no_cuda("gen_device", cfg.gen_device, why)
        why = _core.cuda_unsupported(core)  # the GPU is there; the config may be past its kernels
        if why:
            raise SettingError("gen_device", f"{cfg.gen_device!r}: {why}; {USE_CPU}")
    except SettingError:
        if cfg.gen_device == "auto":
            return "cpu"
        raise
    return train_device if train_device.startswith("cuda") else cfg.gen_device


def build_source(cfg: DataConfig, tokenizer=None, device: str = "cpu", progress: bool = True):
    """``(source, tokenizer)``; tokenizer is None for NCA and Dyck data.

    Pass ``tokenizer`` to reuse one (a resumed run must keep its vocabulary);
    ``device`` is the training device (NCA generation may follow it);
    ``progress`` shows a bar while a text corpus is tokenized (once: ncalm.data.cache).
    A SettingError names its key within ``cfg`` (``text.tokenizer``).
    """
    if cfg.kind == "nca":
        args = (cfg.nca_config(), cfg.seed, cfg.pool_size, cfg.epoch_sequences, cfg.gen_threads,
                generator_device(cfg, device))
        return (NCASource(*args) if cfg.control == "none" else ControlSource(*args, control=cfg.control)), None
    if cfg.kind == "dyck":
        return DyckSource(cfg.dyck.k, cfg.dyck.depth, cfg.seq_len, cfg.seed), None
    with within("text"):
        return language_source(cfg.text, cfg.seq_len, cfg.seed, tokenizer, progress)
