"""Hugging Face interop: `ncalm export-hf` writes a folder that transformers loads with the same
logits, greedy continuation and token ids; an HF Llama folder loads and trains with `pretrain --init`;
other Llama shapes are refused by name."""
import json
import re

import pytest
import torch

from ncalm.lm.checkpoint import load_model, save_checkpoint
from ncalm.cli import main
from ncalm.data.corpus import documents
from ncalm.lm.hf import hf_name, model_config_from_hf, ncalm_name, read_hf
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.sampling import generate_ids
from ncalm.lm.tokenizer import BPETokenizer, ByteTokenizer

TEXT = "def main():\n    return os.path.join('héllo', 'b')  # ✓\n"


def tiny_checkpoint(path, tokenizer=None, **overrides):
    """A tiny-preset checkpoint with peaked predictions (large weights), a rotary base and norm eps
    other than the defaults (so that a reader ignoring them would disagree)."""
    tokenizer = tokenizer or ByteTokenizer()
    torch.manual_seed(0)
    cfg = model_config("tiny", vocab_size=tokenizer.vocab_size, max_seq_len=64, rope_theta=500.0,
                       norm_eps=1e-6, **overrides)
    model = LlamaLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0 if p.dim() > 1 else 1.0)
    save_checkpoint(path, {"model": model.state_dict(), "model_config": cfg.to_dict(),
                           "tokenizer": tokenizer.to_dict()})
    return model


def test_export_loads_in_transformers_with_the_same_logits_and_greedy_continuation(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    model = tiny_checkpoint(tmp_path / "c.pt")
    assert main(["export-hf", str(tmp_path / "c.pt"), str(tmp_path / "hf")]) == 0
    assert "LlamaForCausalLM" in capsys.readouterr().out
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    x = torch.randint(0, 257, (3, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model.eval()(x)[0], hf(x).logits
    assert (ours - theirs).abs().max().item() <= 1e-5
    prompts = [[72, 101, 108], [40, 41, 42, 43, 44]]
    for prompt, got in zip(prompts, generate_ids(model, prompts, max_new_tokens=24, batch_size=1)):
        want = hf.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False, eos_token_id=None)
        assert got == want[0, len(prompt):].tolist()
    assert len({tuple(g) for g in generate_ids(model, prompts, max_new_tokens=24)}) > 1  # not degenerate
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok(TEXT)["input_ids"] == ByteTokenizer().encode(TEXT) and tok.decode(tok(TEXT)["input_ids"]) == TEXT
    assert tok.eos_token_id == 256 == hf.generation_config.eos_token_id


def test_a_bpe_checkpoints_tokenizer_exports_with_the_same_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    bpe = BPETokenizer.train(documents("stdlib", max_bytes=100_000)[0], vocab_size=400)
    tiny_checkpoint(tmp_path / "c.pt", bpe)
    assert main(["export-hf", str(tmp_path / "c.pt"), str(tmp_path / "hf")]) == 0
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = bpe.encode(TEXT)
    assert tok(TEXT)["input_ids"] == ids and tok.decode(ids) == TEXT and tok.eos_token_id == bpe.eos_id


def test_export_and_import_round_trip_exactly_and_export_refuses_to_overwrite(tmp_path, capsys):
    model = tiny_checkpoint(tmp_path / "c.pt", mlp_hidden=96)
    assert main(["export-hf", str(tmp_path / "c.pt"), str(tmp_path / "hf")]) == 0
    back, tok, meta = load_model(tmp_path / "hf")  # an HF folder serves wherever a checkpoint does
    assert back.cfg == model.cfg and isinstance(tok, ByteTokenizer)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    assert main(["export-hf", str(tmp_path / "c.pt"), str(tmp_path / "hf")]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert all(ncalm_name(hf_name(n)) == n for n in model.state_dict())


def test_export_takes_its_folder_as_out_or_as_every_other_command_does_with_out(tmp_path, capsys):
    # --out was once "unrecognized arguments: --out": OUT was positional only, unlike every other command's.
    tiny_checkpoint(tmp_path / "c.pt")
    ckpt = str(tmp_path / "c.pt")
    for n, argv in enumerate((["--out", "{}"], ["--out", "{}", "--force"], ["{}", "--out", "{}"], ["--force", "{}"])):
        out = str(tmp_path / f"hf{n}")
        assert main(["export-hf", ckpt, *(a.format(out) for a in argv)]) == 0
        assert capsys.readouterr().out.startswith(f"wrote {out}: LlamaForCausalLM") and (tmp_path / f"hf{n}").is_dir()
    for argv, said in (([ckpt, "a", "--out", "b"], "out: two folders given, 'a' and --out 'b': give one"),
                       ([ckpt], "out: no folder to write given: pass it after the checkpoint, or as --out OUT")):
        assert main(["export-hf", *argv]) == 2
        assert capsys.readouterr().err == f"ncalm export-hf: error: {said}\n"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_takes_its_checkpoint_as_every_other_command_does_with_checkpoint(tmp_path, capsys):
    # Once "unrecognized arguments: --checkpoint": the checkpoint was positional only, unlike every other command's.
    tiny_checkpoint(tmp_path / "c.pt")
    ckpt = str(tmp_path / "c.pt")
    for n, argv in enumerate((["--checkpoint", ckpt, "--out", "{}"], ["--checkpoint", ckpt, "{}"],
                              ["{}", "--checkpoint", ckpt, "--force"], [ckpt, "--out", "{}"])):
        out = str(tmp_path / f"hf{n}")
        assert main(["export-hf", *(a.format(out) for a in argv)]) == 0
        assert capsys.readouterr().out.startswith(f"wrote {out}: LlamaForCausalLM") and (tmp_path / f"hf{n}").is_dir()
    for argv, said in ((["a", "b", "--checkpoint", ckpt], f"checkpoint: two checkpoints given, 'a' and --checkpoint "
                                                           f"{ckpt!r}: give one"),
                       (["--out", "b"], "checkpoint: required: the checkpoint to export (--checkpoint CKPT)"),
                       # a positional beside both options, or a file as OUT: once "out: is a file, not a folder"
                       (["a", "--checkpoint", ckpt, "--out", "b"], f"checkpoint: 'a' given beside --checkpoint "
                                                                   f"{ckpt!r} and --out 'b': drop it"),
                       ([ckpt, "--checkpoint", ckpt], f"checkpoint: two checkpoints given, {ckpt!r} and "
                                                      f"--checkpoint {ckpt!r}: give one")):
        assert main(["export-hf", *argv]) == 2
        assert capsys.readouterr().err == f"ncalm export-hf: error: {said}\n"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_training_runs_folder_is_neither_an_export_target_nor_a_model(tmp_path, capsys):
    # export-hf --force once replaced the run's config.json, and the folder then loaded as a model.
    run = tmp_path / "run"
    assert main(["prepretrain", "--out", str(run), "--data", "dyck", "--steps", "1", "--warmup", "0",
                 "--no-progress"]) == 0
    settings = (run / "config.json").read_text()
    assert main(["export-hf", str(run / "checkpoint.pt"), str(run), "--force"]) == 2
    assert "is a training run's folder: export to a folder of its own" in capsys.readouterr().err
    assert (run / "config.json").read_text() == settings
    assert main(["eval", "bpb", "--checkpoint", str(run)]) == 2
    assert "pass one of its checkpoint files (checkpoint.pt)" in capsys.readouterr().err


def hf_folder(path, **config):
    """A random HF LlamaForCausalLM saved by transformers itself."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                                   rope_theta=2000.0, rms_norm_eps=1e-5, **config)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(path)
    return hf


@pytest.mark.parametrize("tied", [False, True])
def test_an_hf_llama_folder_loads_with_its_logits(tmp_path, tied):
    hf = hf_folder(tmp_path / "hf", tie_word_embeddings=tied)
    model, tok, _ = load_model(tmp_path / "hf")
    assert tok is None and model.cfg.rope_theta == 2000.0 and model.cfg.mlp_hidden == 80
    x = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x)[0] - hf(x).logits).abs().max().item() <= 1e-5


def test_pretrain_init_from_an_hf_llama_folder(tmp_path):
    hf_folder(tmp_path / "hf")
    out = tmp_path / "lang"
    assert main(["pretrain", "--out", str(out), "--init", str(tmp_path / "hf"), "--max-bytes", "100k",
                 "--freeze", "attn", "--steps", "2", "--batch-size", "2", "--seq-len", "32", "--val-sequences", "2",
                 "--threads", "1", "--no-progress"]) == 0
    source, (model, tok, meta) = read_hf(tmp_path / "hf")["model"], load_model(out / "checkpoint.pt")
    assert tok.vocab_size == model.cfg.vocab_size == 257 and model.cfg.d_model == 32
    assert torch.equal(model.layers[1].attn.wk.weight, source["layers.1.attn.wk.weight"])  # copied, frozen
    assert not torch.equal(model.layers[1].mlp.w1.weight, source["layers.1.mlp.w1.weight"])  # copied, trained
    assert meta["transfer"]["reinitialized"] == ["embed.weight", "head.weight"]


BASE = {"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4}


@pytest.mark.parametrize("change, said", [
    ({"num_key_value_heads": 2}, r"grouped-query attention \(num_key_value_heads=2, num_attention_heads=4\)"),
    ({"attention_bias": True}, "attention_bias=true"),
    ({"mlp_bias": True}, "mlp_bias=true"),
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope scaling"),
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}}, "rope scaling"),
    ({"hidden_act": "gelu"}, "hidden_act='gelu'"),
    ({"head_dim": 32}, r"head_dim=32 \(hidden_size / num_attention_heads = 16\)"),
    ({"model_type": "mistral"}, "model_type 'mistral' is not 'llama'"),
])
def test_other_llama_shapes_are_refused_by_name(tmp_path, capsys, change, said):
    with pytest.raises(ValueError, match=said):
        model_config_from_hf({**BASE, **change}, "m")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({**BASE, **change}))
    assert main(["pretrain", "--out", str(tmp_path / "o"), "--init", str(tmp_path / "m"), "--steps", "1"]) == 2
    assert re.search(said, capsys.readouterr().err)


def test_the_rotary_base_is_read_where_either_transformers_major_writes_it():
    assert model_config_from_hf({**BASE, "rope_theta": 5e5}, "m").rope_theta == 5e5  # 4.x
    assert model_config_from_hf({**BASE, "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}},
                                "m").rope_theta == 5e5  # 5.x


def test_keep_embeddings_from_an_exported_folder_reads_text_with_its_tokenizer(tmp_path):
    model = tiny_checkpoint(tmp_path / "c.pt")
    assert main(["export-hf", str(tmp_path / "c.pt"), str(tmp_path / "hf")]) == 0
    assert main(["pretrain", "--out", str(tmp_path / "lang"), "--init", str(tmp_path / "hf"), "--keep-embeddings",
                 "--freeze", "embed", "--max-bytes", "50k", "--steps", "1", "--batch-size", "2", "--seq-len", "32",
                 "--val-sequences", "2", "--threads", "1", "--no-progress"]) == 0
    trained, tok, meta = load_model(tmp_path / "lang" / "checkpoint.pt")
    assert isinstance(tok, ByteTokenizer) and torch.equal(trained.embed.weight, model.embed.weight)
    assert meta["transfer"]["reinitialized"] == []
