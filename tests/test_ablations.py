"""Transfer ablations as arms: each copies exactly the named parameters and freezes exactly the named ones."""
import re

import pytest
import torch

from ncalm.experiment.arms import arms_of, first_stage, language_stage
from ncalm.experiment.config import ABLATIONS, ExperimentConfig
from ncalm.lm.checkpoint import load_checkpoint
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.transfer import transfer
from ncalm.train import train

# What each ablation means, written out by parameter name (independently of the part specs).
ATTN, MLP = re.compile(r"layers\.\d+\.attn\.w[qkvo]\."), re.compile(r"layers\.\d+\.mlp\.w[123]\.")
NORM = re.compile(r"layers\.\d+\.(attn_norm|mlp_norm)\.|norm\.weight$")
GROUPS = {"attn": ATTN, "mlp": MLP, "norm": NORM}
KEEP = {"attn-only": {"attn"}, "mlp-only": {"mlp"}, "norms-only": {"norm"}, "no-attn": {"mlp", "norm"},
        "no-mlp": {"attn", "norm"}, "no-norms": {"attn", "mlp"}, "frozen-attn": {"attn", "mlp", "norm"},
        "frozen-mlp": {"attn", "mlp", "norm"}, "frozen-all": {"attn", "mlp", "norm"}}
FROZEN = {"frozen-attn": {"attn"}, "frozen-mlp": {"mlp"}, "frozen-all": {"attn", "mlp", "norm"}}


def _in(name: str, groups: set[str]) -> bool:
    return any(GROUPS[g].match(name) or (g == "norm" and name == "norm.weight") for g in groups)


def _cfg(corpus, ablations=tuple(ABLATIONS)) -> ExperimentConfig:
    return ExperimentConfig.from_dict({
        "seeds": [0], "threads": 1, "arms": ["scratch", "nca"], "bands": [[0.1, 1.0]], "ablations": list(ablations),
        "progress": False, "bpb_bytes": 0,
        "prepretrain": {"data": {"seq_len": 64, "nca": {"grid": 6, "colors": 4}}, "optim": {"batch_size": 2},
                        "run": {"tokens": 256}},
        "language": {"data": {"seq_len": 32, "val_sequences": 2, "text": {"source": str(corpus), "val_percent": 50.0}},
                     "optim": {"batch_size": 2, "warmup_steps": 0, "lr": 1e-2, "weight_decay": 0.1},
                     "run": {"tokens": 64}}})


def test_ablation_arms_reuse_their_bands_first_stage(tmp_path):
    cfg = _cfg("unused", ["attn-only", "frozen-mlp"])
    arms = arms_of(cfg)
    assert [a.name for a in arms] == ["scratch", "nca 0.1-1", "nca 0.1-1 attn-only", "nca 0.1-1 frozen-mlp"]
    assert {a.first_slug for a in arms[1:]} == {"nca_0.1-1"}
    firsts = {first_stage(cfg, a, 0, tmp_path, "x").to_dict().__repr__() for a in arms[1:]}
    assert len(firsts) == 1
    lang = language_stage(cfg, 0, tmp_path, "ck.pt", "frozen-mlp")
    assert (lang.model.transfer.reinit, lang.model.transfer.freeze) == ([], ["mlp"])
    with pytest.raises(ValueError, match="^ablations: are variants of the nca arm"):
        ExperimentConfig(arms=["scratch"], ablations=["attn-only"])
    with pytest.raises(ValueError, match="^ablations: must be distinct names of attn-only"):
        ExperimentConfig(ablations=["attn"])


def test_ablations_copy_and_freeze_exactly_the_named_parameters(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the rule of the grid is a token of the frame; " * 200)
    cfg = _cfg(corpus)
    first = train(first_stage(cfg, arms_of(cfg)[1], 0, tmp_path / "first", "x"))
    source = load_checkpoint(first["checkpoint"])["model"]
    for name in ABLATIONS:
        lang = language_stage(cfg, 0, tmp_path / name, first["checkpoint"], name)
        # After the transfer: the kept parameters are the NCA model's, the others the fresh model's.
        torch.manual_seed(lang.run.seed)
        model = LlamaLM(model_config("tiny", max_seq_len=32, vocab_size=258))
        fresh = {k: v.clone() for k, v in model.state_dict().items()}
        report = transfer(model, source, lang.model.transfer)
        for key, value in model.state_dict().items():
            expected = source[key] if _in(key, KEEP[name]) else fresh[key]
            assert torch.equal(value, expected), (name, key)
        assert set(report["copied"]) == {k for k in fresh if _in(k, KEEP[name])}, name
        # After training steps: exactly the frozen ones are still the NCA model's; everything else moved.
        result = train(lang)
        state = load_checkpoint(result["checkpoint"])
        assert set(state["transfer"]["frozen"]) == {k for k in fresh if _in(k, FROZEN.get(name, set()))}, name
        for key, value in state["model"].items():
            if _in(key, FROZEN.get(name, set())):
                assert torch.equal(value, source[key]), (name, key)
            else:
                assert not torch.equal(value, source.get(key, fresh[key])), (name, key)
                assert not torch.equal(value, fresh[key]), (name, key)


def test_an_experiment_with_ablations_trains_each_first_stage_once(tmp_path):
    import json

    from ncalm.experiment.runner import run_experiment

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the rule of the grid is a token of the frame; " * 200)
    records = run_experiment(_cfg(corpus, ["frozen-attn"]), tmp_path / "out", echo=lambda _: None)
    assert [(r["arm"], r["ablation"]) for r in records] == [("scratch", None), ("nca 0.1-1", None),
                                                          ("nca 0.1-1 frozen-attn", "frozen-attn")]
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    first = str(tmp_path / "out" / "seed0" / "nca_0.1-1" / "prepretrain")
    assert [e["event"] for e in events if e.get("stage") == first] == ["start", "finish", "skip"]
    assert not (tmp_path / "out" / "seed0" / "nca_0.1-1_frozen-attn" / "prepretrain").exists()
    assert records[2]["prepretrain"] == records[1]["prepretrain"]
