"""Training: ``train(StageConfig) -> dict`` for one stage (NCA, Dyck or language).

The trainer (and with it torch) loads on first use of ``train``, so the
configs serve `--help` and experiment planning without it.
"""
from ncalm.train.config import OptimConfig, RunConfig, StageConfig

__all__ = ["OptimConfig", "RunConfig", "StageConfig", "train"]


def __getattr__(name: str):
    if name == "train":
        from ncalm.train.trainer import train

        return train
    raise AttributeError(f"module 'ncalm.train' has no attribute {name!r}")
