"""Tokenize a corpus once into token files that every stage memory-maps.

Writes OUT/train.bin and OUT/val.bin (each document's ids, then the
end-of-text id; uint16, or uint32 for a vocabulary over 65,536), OUT/meta.json
(tokenizer, vocabulary, dtype, documents, tokens and UTF-8 bytes per split,
source fingerprint, ncalm version) and OUT/tokenizer.json. The work runs on
every core in chunks; an interrupted run rerun keeps its finished chunks, and
a rerun on the same corpus with the same settings does nothing ("up to date").
An OUT holding another tokenization (another source, tokenizer or settings in
its meta.json, or token files without one) is refused unless --force.
Train on the result with --set language.data=bin:OUT (or --text bin:OUT).

examples:
  ncalm tokenize --text corpus/ --tokenizer gpt2 --gpt2-files gpt2/ --out tokens/
  ncalm tokenize --text docs.jsonl --field body --tokenizer byte --out tokens/
"""
from __future__ import annotations

import argparse

from ncalm.cli.options import add_tree, tree_config
from ncalm.data.tokenize import TokenizeConfig, tokenize


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_tree(p, TokenizeConfig, TokenizeConfig(), "tokenize", "bpe_vocab=8192")


def run(args: argparse.Namespace) -> int:
    tokenize(tree_config(TokenizeConfig, args))
    return 0
