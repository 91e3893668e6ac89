"""Run the paper's comparison end to end: for each seed, the arms scratch (no first
stage), NCA pre-pre-training (one arm per complexity band), Dyck and natural text
at one matched first-stage token budget (and, with --arms and --ablations, the NCA
controls and transfer ablations of docs/sweeps.md), each followed by the same language stage;
then results.json, results.md (table) and curves.png (validation loss) in --out.
Settings come from --preset, then --config (TOML, same keys), then --set KEY=VALUE
and the flags below. Rerunning into the same --out resumes: finished arms are not
redone, an interrupted stage continues from its checkpoint, and the report covers
every finished run in --out, including arms and seeds this invocation leaves out."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ncalm.cli.options import add_tree_arguments, tree_config
from ncalm.experiment.config import SCRATCH, ExperimentConfig
from ncalm.experiment.presets import PRESETS, preset
from ncalm.settings import SettingError, add_flags, output_folder, show_value, within


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", choices=list(PRESETS), help="base settings")
    add_tree_arguments(p, ExperimentConfig, "experiment", "language.optim.lr=3e-4")
    p.add_argument("--out", default=None, help="output directory (default: runs/experiment-PRESET)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved settings and stop")
    # The top-level settings as flags; their defaults are the preset's, named for each preset.
    group = p.add_argument_group("settings (default: the preset's)")
    add_flags(p, ExperimentConfig, ExperimentConfig(), group=group,
              only=("seeds", "arms", "bands", "ablations", "device", "precision", "threads", "progress"))
    presets = {name: ExperimentConfig.from_dict(d) for name, d in PRESETS.items()}
    for action in group._group_actions:
        if action.help != argparse.SUPPRESS:
            key = action.dest[1:]
            values = {name: getattr(cfg, key) for name, cfg in presets.items()}
            # A switch (--no-progress) shows the setting it flips, not a bare value that reads as the switch's.
            shown = {name: "unset" if v is None else f"{key}={str(v).lower()}" if action.const is not None
                     else show_value(v) for name, v in values.items()}
            said = (f"{shown.popitem()[1]} in every preset" if len(set(shown.values())) == 1
                    else "; ".join(f"{name}: {value}" for name, value in shown.items()))
            action.help = re.sub(r" \(default: [^)]*\)$", "", action.help) + f" (default: the preset's; {said})"


def _vocab(data) -> int | None:
    """The vocabulary a stage's data gives its model, where it is known without reading the data."""
    from ncalm.data.tokenize import GPT2_VOCAB
    from ncalm.data.tokens import _bin_files, _shards_tokenizer, bin_meta, is_bin_spec
    from ncalm.lm.tokenizer import ByteTokenizer

    if data.kind == "nca":
        return data.nca.vocab_size
    if data.kind == "dyck":
        return 2 * data.dyck.k
    if data.text.vocab_size:
        return data.text.vocab_size
    if data.text.source is None:  # no corpus set: a bin:DIR would bring its own vocabulary
        return None
    if is_bin_spec(data.text.source):
        root = _bin_files(data.text.source)[0]
        tokenizer = _shards_tokenizer(root)  # as bin_source reads the folder: meta.json's vocabulary, else this
        return bin_meta(root)[0] or (tokenizer.vocab_size if tokenizer else None)
    tok = data.text.tokenizer
    if tok.startswith("hf:"):
        from ncalm.data.tokenize import named_tokenizer
        return named_tokenizer(tok).vocab_size
    return {"byte": ByteTokenizer.vocab_size, "gpt2": GPT2_VOCAB}.get(tok, data.text.bpe_vocab)


def _param_count(n: int) -> str:
    """1.61B, or below a billion in millions (85.00M, 0.14M)."""
    return f"{n / 1e9:.2f}B" if n >= 10**9 else f"{n / 1e6:.2f}M"


def parameter_summary(cfg) -> str:
    """'parameters: 1.61B in the transformer layers ...; with embedding and head: ...' for --dry-run."""
    from ncalm.experiment.arms import arms_of, first_stage
    from ncalm.lm.config import model_config

    shape = model_config(cfg.model.size or "tiny", **cfg.model.overrides)
    parts = []
    # Each kind of first stage as the experiment builds it (arms.py), once: its data decides the vocabulary.
    stages = [("language", cfg.language.data)] + [
        (arm.kind, first_stage(cfg, arm, cfg.seeds[0], Path("unused"), cfg.prepretrain.data.text.source).data)
        for arm in {a.kind: a for a in arms_of(cfg) if a.kind != SCRATCH}.values()]
    for name, data in stages:
        vocab = _vocab(data)
        if vocab:
            parts.append(f"{name} {_param_count(shape.replace(vocab_size=vocab).n_params())} (vocabulary {vocab:,})")
    return (f"parameters: {_param_count(shape.n_params(non_embedding=True))} in the transformer layers "
            f"({shape.n_layer} x {shape.d_model}, MLP {shape.mlp_hidden:,}); with embedding and head: "
            + (", ".join(parts) or "vocabulary unknown until the data is read"))


def run(args: argparse.Namespace) -> int:
    from ncalm.experiment.runner import check_runnable, pin_precision, run_and_report

    out = Path(args.out or f"runs/experiment-{args.preset}")
    cfg = tree_config(ExperimentConfig, args, preset(args.preset))
    if args.dry_run:
        check_runnable(cfg, unset_corpus=True)
        cfg = pin_precision(cfg, out)  # what a run into --out would use
        print(json.dumps(cfg.to_dict(), indent=2))
        print(parameter_summary(cfg), file=sys.stderr)  # stdout stays one JSON document
        try:  # no corpus set: said last, where a glance at the dry run lands
            with within("language.data.text"):
                cfg.language.data.text.corpus()
        except SettingError as exc:
            print(f"warning: {exc} (a run refuses to start without it)", file=sys.stderr)
        return 0
    output_folder("--out", out)  # not for a dry run: it writes nothing
    wall = run_and_report(cfg, out)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'curves.png'} ({wall:.0f} s this invocation)")
    return 0
