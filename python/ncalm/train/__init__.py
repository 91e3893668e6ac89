"""Training: ``train(TrainConfig) -> dict`` for one stage (NCA, Dyck or language)."""
from ncalm.train.config import DataConfig, OptimConfig, TrainConfig
from ncalm.train.trainer import train
from ncalm.transfer import TransferConfig

__all__ = ["DataConfig", "OptimConfig", "TrainConfig", "TransferConfig", "train"]
