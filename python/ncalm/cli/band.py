"""Propose an NCA complexity band for a text corpus, and write the sweep that tests it.

Measures the corpus's own gzip complexity on random windows of its byte tokens
as long as one NCA score (score_frames x patches per frame tokens, scored as the
NCA filter scores a rule), shows it against the complexity of freshly drawn NCA
rules (band.png), proposes the corpus's quartiles as a band, and writes
band.json and sweep.toml: `ncalm sweep --config OUT/sweep.toml --out
OUT/sweep` compares the proposal with the experiment's own band (its first: the paper's (0.5, 1.0) in
the gpu-small and paper presets, its same-share equivalent (0.22, 1.0) for the
tiny preset's 4 colours, where the paper's band holds no rule) on this corpus,
scratch included.
The NCA settings and the corpus come from an experiment preset (--preset,
--config, --set, --text), so the sweep trains what was measured."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ncalm.cli.options import add_tree, tree_config
from ncalm.experiment.config import ExperimentConfig
from ncalm.experiment.presets import PRESETS, preset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", choices=list(PRESETS), help="experiment preset: NCA settings and corpus")
    add_tree(p, ExperimentConfig, ExperimentConfig(), "experiment", "language.data.text.source=corpus.txt",
             only=("language.data.text.source",))
    p.add_argument("--windows", type=int, default=2000, help="corpus windows to score")
    p.add_argument("--rules", type=int, default=2000, help="NCA rules to score")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the sweep it writes")
    p.add_argument("--out", default=None, help="output directory (default: runs/band-PRESET)")


def _toml(value) -> str:
    if value is None:  # TOML has no null; an optional setting reads "none" as unset, as --set does
        return '"none"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items() if v is not None) + " }"
    return json.dumps(value)  # strings, numbers, booleans and lists read the same in TOML


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ncalm.atomic_json import write_json, write_text
    from ncalm.data.corpus import documents
    from ncalm.data.tokens import is_bin_spec
    from ncalm.eval.band import corpus_scores, nca_scores, plot_band, propose_band, window_tokens
    from ncalm.nca.pictures import accepted_fraction
    from ncalm.settings import leaves, output_folder, within

    for name in ("windows", "rules"):
        if getattr(args, name) < 10:
            raise ValueError(f"--{name} must be >= 10, got {getattr(args, name)}")
    cfg = tree_config(ExperimentConfig, args, preset(args.preset))
    text = cfg.language.data.text
    with within("language.data.text"):
        text.corpus()  # set: the paper preset leaves it to you
    if is_bin_spec(text.source):  # read as text, a tokenize folder's meta.json and tokenizer.json were scored
        raise ValueError(f"--text {text.source}: token files hold no text to score as bytes; give the corpus "
                         "they were made from")
    out = output_folder("--out", args.out or f"runs/band-{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    nca = cfg.prepretrain.data.nca_config()
    window = window_tokens(nca)
    train_docs, _ = documents(text.source, text.val_percent, text.max_bytes or 5_000_000, 1)
    corpus = corpus_scores(train_docs, window, args.windows)
    rules = nca_scores(nca, args.rules)
    proposed = propose_band(corpus)
    own = next((tuple(b) for b in cfg.bands if b is not None), None)  # none: every rule, no band to draw
    if own is None:
        raise ValueError("the experiment has no band to compare the proposal with: set bands, e.g. "
                         "--set 'bands=[[0.5, 1.0]]'")
    bands = {"proposed": proposed, "experiment": own}
    # The title names the corpus by its paths' last two parts (a long path ran off the image); band.json and the
    # summary give it whole.
    name = ", ".join("/".join(Path(s).parts[-2:]) for s in text.source.split(","))
    name = name if len(name) <= 60 else name[:57] + "..."
    plot_band(corpus, rules, bands, out / "band.png", f"{name}\n{window}-token windows vs NCA rules "
                                                      f"({nca.colors} colours)")
    report = {"corpus": text.source, "window_tokens": window, "nca": nca.to_dict(),
              "corpus_quantiles": dict(zip(("5", "25", "50", "75", "95"),
                                           map(float, np.percentile(corpus, [5, 25, 50, 75, 95])))),
              "proposed_band": list(proposed),
              "nca_share_inside": {name: accepted_fraction(rules, b) for name, b in bands.items()}}
    write_json(out / "band.json", report)
    # The sweep: this experiment (what differs from the preset), scratch and NCA, the two bands.
    base, here = leaves(ExperimentConfig.from_dict(preset(args.preset)).to_dict()), leaves(cfg.to_dict())
    changed = {k: v for k, v in here.items() if base.get(k) != v and k not in ("bands", "arms", "seeds", "name")}
    lines = [f'name = "band-{Path(text.source).name}"', f'preset = "{args.preset}"', f"seeds = {args.seeds}",
             "[experiment]", 'arms = ["scratch", "nca"]', *(f"{k} = {_toml(v)}" for k, v in changed.items()),
             "[axes]", f"bands = {_toml([[list(proposed)], [list(own)]])}"]
    write_text(out / "sweep.toml", "\n".join(lines) + "\n")
    share = report["nca_share_inside"]
    print(f"corpus {text.source}: window score median {report['corpus_quantiles']['50']:.3f}, quartiles "
          f"{proposed[0]:.2f}-{proposed[1]:.2f} (NCA rules inside: {share['proposed']:.1%}; the experiment's band "
          f"{own[0]:g}-{own[1]:g}: {share['experiment']:.1%})")
    if share["proposed"] == 0:
        print("no NCA rule of these settings falls inside the proposal: more colours, another temperature or "
              "grid change the NCA's range")
    # The sweep's folder inside this one: a band run per corpus (its own --out) gets a sweep of its own.
    print(f"wrote {out / 'band.png'}, {out / 'band.json'}, {out / 'sweep.toml'}; test it: "
          f"ncalm sweep --config {out / 'sweep.toml'} --out {out / 'sweep'}")
    return 0
