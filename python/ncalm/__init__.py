"""ncalm: NCA pre-pre-training of language models. The generator API (the compiled core): ``__all__``."""
from ncalm.nca.config import NCAConfig
from ncalm.nca.cpu import (
    IGNORE_INDEX,
    complexity,
    decode,
    encode,
    filter_rules,
    find_rules,
    rollout,
    sample_rules,
    score_rules,
    sequence_tokens,
    split_inputs_targets,
)
from ncalm.nca.generator import NCAGenerator


def _version() -> str:
    """The installed distribution's version; in a dev build (PYTHONPATH=python), pyproject.toml's."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ncalm")
    except PackageNotFoundError:
        import re
        from pathlib import Path
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M) if pyproject.is_file() else None
        return found.group(1) if found else "0+unknown"


__version__ = _version()

__all__ = [
    "IGNORE_INDEX", "NCAConfig", "NCAGenerator", "complexity", "decode", "encode", "filter_rules",
    "find_rules", "rollout", "sample_rules", "score_rules", "sequence_tokens", "split_inputs_targets",
]
