"""`ncalm experiment`: the paper's comparison (scratch / NCA / Dyck / text, then language) end to end."""
from ncalm.experiment.config import ExperimentConfig
from ncalm.experiment.presets import PRESETS
from ncalm.experiment.report import write_report
from ncalm.experiment.runner import run_experiment

__all__ = ["ExperimentConfig", "PRESETS", "run_experiment", "write_report"]
