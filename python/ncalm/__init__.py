"""ncalm: NCA pre-pre-training of language models.

Generator API (the compiled core):
    NCAConfig, NCAGenerator, sequence_tokens, find_rules, score_rules,
    filter_rules, sample_rules, rollout, encode, decode, complexity
"""
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

__version__ = "0.1.0"

__all__ = [
    "IGNORE_INDEX", "NCAConfig", "NCAGenerator", "complexity", "decode", "encode", "filter_rules",
    "find_rules", "rollout", "sample_rules", "score_rules", "sequence_tokens", "split_inputs_targets",
]
