"""The `paper` preset as the reference's setup: its parameter count, attention dropout, the repeat warning."""
import json

import pytest
import torch

from ncalm.cli import main
from ncalm.lm.config import ModelConfig, model_config
from ncalm.lm.model import LlamaLM


@pytest.mark.parametrize("shape", [dict(), dict(mlp_hidden=200, vocab_size=300), dict(n_layer=3, d_model=32)])
def test_parameter_count_without_torch_is_the_models(shape):
    cfg = model_config("tiny", **shape)
    model = LlamaLM(cfg)
    assert cfg.n_params() == sum(p.numel() for p in model.parameters())  # the slow count, by torch
    token_space = model.embed.weight.numel() + model.head.weight.numel()
    assert cfg.n_params(non_embedding=True) == cfg.n_params() - token_space


def test_paper_preset_dry_run_prints_the_papers_1_6b(capsys):
    assert main(["experiment", "--preset", "paper", "--dry-run"]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-2]  # the last: the corpus is not set
    assert line.startswith("parameters: 1.61B in the transformer layers (24 x 2048, MLP 8,192)")
    n = model_config("paper", mlp_hidden=8192).n_params(non_embedding=True)
    assert abs(n / 1.6e9 - 1) < 0.02
    assert main(["experiment", "--preset", "tiny", "--dry-run"]) == 0  # once "0.00B"
    line = capsys.readouterr().err.strip().splitlines()[-1]
    n = model_config("tiny").n_params(non_embedding=True)
    assert line.startswith(f"parameters: {n / 1e6:.2f}M in the transformer layers (2 x 64, MLP 192)")


def test_the_paper_preset_names_no_language_corpus_and_a_run_refuses_without_one(tmp_path, capsys):
    # It trained on the standard library's bytes (vocabulary 257), 2B tokens, without a word.
    assert main(["experiment", "--preset", "paper", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["language"]["data"]["text"]["source"] is None
    said = "data.text.source: not set: name your corpus"
    last = out.err.splitlines()[-1]
    assert last.startswith(f"warning: language.{said}") and "OpenWebText" in last
    assert "language 1.61B" not in out.err  # no vocabulary is claimed for a corpus not named
    for argv in (["experiment", "--preset", "paper", "--out", str(tmp_path / "exp")], ["band", "--preset", "paper"],
                 ["pretrain", "--text", "none", "--out", str(tmp_path / "run")]):
        assert main(argv) == 2
        where = "" if argv[0] == "pretrain" else "language."
        assert capsys.readouterr().err.startswith(f"ncalm {argv[0]}: error: {where}{said}")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "run").exists()  # refused before anything is written
    # The other presets keep their documented stand-in, the standard library.
    for name in ("tiny", "gpu-small"):
        assert main(["experiment", "--preset", name, "--dry-run"]) == 0
        out = capsys.readouterr()
        assert json.loads(out.out)["language"]["data"]["text"]["source"] == "stdlib" and "warning" not in out.err


def _gpt2_files_named(tmp_path, monkeypatch) -> None:
    """$NCALM_GPT2_FILES naming a folder with GPT-2's file names: a dry run looks them up, never reads them."""
    files = tmp_path / "gpt2"
    files.mkdir()
    for name in ("vocab.bpe", "encoder.json"):
        (files / name).write_text("")
    monkeypatch.setenv("NCALM_GPT2_FILES", str(files))


def test_the_paper_preset_reads_a_raw_corpus_in_gpt2_tokens_and_token_files_in_theirs(tmp_path, capsys,
                                                                                      monkeypatch):
    # It read a raw corpus as bytes (vocabulary 257); the paper's language stage is in GPT-2 tokens.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n" * 50)
    monkeypatch.delenv("NCALM_GPT2_FILES", raising=False)
    # Without GPT-2's files: refused before anything is written (the first stage trained, then the language
    # stage failed for them).
    out = tmp_path / "exp"
    for preset in ("paper", "tiny"):
        assert main(["experiment", "--preset", preset, "--arms", "nca", "--set", f"language.data={corpus}",
                     "--set", "language.data.text.tokenizer=gpt2", "--out", str(out)]) == 2
        assert "language.data.text.tokenizer: gpt2 needs GPT-2's vocab.bpe" in capsys.readouterr().err
        assert not out.exists()
    _gpt2_files_named(tmp_path, monkeypatch)
    assert main(["experiment", "--preset", "paper", "--dry-run", "--set", f"language.data={corpus}"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["language"]["data"]["text"]["tokenizer"] == "gpt2"
    assert "language 1.82B (vocabulary 50,257)" in out.err.splitlines()[-1]
    assert main(["tokenize", "--text", str(corpus), "--tokenizer", "byte", "--out", str(tmp_path / "tok"),
                 "--no-progress"]) == 0
    assert main(["experiment", "--preset", "paper", "--dry-run", "--set", f"language.data=bin:{tmp_path / 'tok'}"]) == 0
    assert "language 1.61B (vocabulary 257)" in capsys.readouterr().err.splitlines()[-1]  # the files' own tokenizer


def test_dry_run_sizes_each_first_stage_as_the_experiment_builds_it(capsys, tmp_path, monkeypatch):
    _gpt2_files_named(tmp_path, monkeypatch)
    # The NCA controls once failed the dry run ("kind: must be one of nca, dyck, text, got 'nca-shuffled'"),
    # and the text arm was sized as bytes whatever its tokenizer.
    argv = ["experiment", "--dry-run", "--arms", "scratch", "nca", "nca-shuffled", "random-unigram", "text",
            "--set", "prepretrain.data.text.tokenizer=gpt2"]
    assert main(argv) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "nca-shuffled 0.14M (vocabulary 258), random-unigram 0.14M (vocabulary 258)" in line
    assert line.endswith("text 6.54M (vocabulary 50,257)")

def test_attention_dropout_only_while_training():
    torch.manual_seed(0)
    model = LlamaLM(ModelConfig(attn_dropout=0.5))
    x = torch.randint(0, 258, (2, 16))
    model.eval()
    a, b = model(x)[0], model(x)[0]
    assert torch.equal(a, b)
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])
    with pytest.raises(ValueError, match="attn_dropout"):
        ModelConfig(attn_dropout=1.0)


def test_a_corpus_read_more_than_once_is_named(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("tiny corpus " * 200)
    assert main(["pretrain", "--text", str(tmp_path / "a.txt"), "--out", str(tmp_path / "run"), "--seq-len", "16",
                 "--batch-size", "4", "--set", "run.tokens=20000", "--set", "run.eval_every=0",
                 "--set", "run.progress=false", "--set", "data.text.val_percent=10"]) == 0
    assert "times: the corpus repeats" in capsys.readouterr().err


def test_token_init_torch_starts_embedding_and_head_as_the_reference():
    from ncalm.lm.config import TransferConfig
    from ncalm.lm.transfer import transfer

    source = LlamaLM(model_config("tiny", d_model=64, vocab_size=300)).state_dict()
    torch.manual_seed(0)
    model = LlamaLM(model_config("tiny", d_model=64, vocab_size=500))
    transfer(model, {k: v for k, v in source.items() if not k.startswith(("embed", "head"))},
             TransferConfig(token_init="torch"))
    assert model.embed.weight.std().item() == pytest.approx(1.0, abs=0.05)  # nn.Embedding: N(0, 1)
    bound = 1 / 64 ** 0.5  # Kaiming-uniform with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert model.head.weight.abs().max().item() <= bound and model.head.weight.std().item() > 0.5 * bound
    assert torch.equal(model.layers[0].attn.wq.weight, source["layers.0.attn.wq.weight"])


def test_keep_best_and_an_experiment_that_transfers_it(tmp_path, capsys):
    from ncalm.lm.checkpoint import load_checkpoint

    out = tmp_path / "exp"
    argv = ["experiment", "--preset", "tiny", "--seeds", "0", "--out", str(out), "--no-progress", "--arms", "nca",
            "--set", "transfer_checkpoint=best", "--set", "prepretrain.run.tokens=4096",
            "--set", "prepretrain.run.eval_every=2", "--set", "language.run.tokens=2048", "--set", "bpb_bytes=0",
            "--set", "prepretrain.data.seq_len=128", "--set", "language.data.seq_len=64",
            "--set", "prepretrain.optim.lr=0.05"]  # a rate high enough that the last is not the best
    assert main(argv) == 0
    first = out / "seed0" / "nca_0.22-1" / "prepretrain"
    best = load_checkpoint(first / "best.pt")
    curve = [json.loads(line) for line in (first / "metrics.jsonl").read_text().splitlines()]
    vals = [(r["step"], r["val_loss"]) for r in curve if "val_loss" in r]
    assert (best["step"], best["val_loss"]) == min(vals, key=lambda sv: sv[1])
    lang = json.loads((out / "seed0" / "nca_0.22-1" / "language" / "config.json").read_text())
    assert lang["model"]["init"] == str(first / "best.pt")
    record = json.loads((out / "seed0" / "nca_0.22-1" / "result.json").read_text())
    icl = record["prepretrain"]["icl"]
    assert icl["rules"] == 16 and icl["k"] >= 1 and 0 <= icl["cell_acc"] <= 1 and 0 < icl["copy_cell_acc"] < 1
    assert f"in context {icl['cell_acc']:.3f} vs copy {icl['copy_cell_acc']:.3f}" in (out / "results.md").read_text()
