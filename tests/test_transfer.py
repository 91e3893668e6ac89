import pytest
import torch

from ncalm.lm.checkpoint import CheckpointError
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.transfer import TOKEN_SPACE, TransferConfig, select, transfer
from ncalm.settings import SettingError



def make(vocab, seed, **kw):
    torch.manual_seed(seed)
    return LlamaLM(model_config("tiny", vocab_size=vocab, max_seq_len=32, **kw))


def test_copies_every_non_embedding_tensor_bit_for_bit_and_reinits_embeddings():
    nca = make(258, seed=1)
    lang = make(257, seed=2)
    fresh = {n: t.clone() for n, t in make(257, seed=2).state_dict().items()}
    report = transfer(lang, nca.state_dict())
    src = nca.state_dict()
    for name, t in lang.state_dict().items():
        if name in TOKEN_SPACE:
            assert torch.equal(t, fresh[name]), name  # the language model's own fresh init
        else:
            assert torch.equal(t, src[name]), name
    assert sorted(report["reinitialized"]) == sorted(TOKEN_SPACE)
    assert len(report["copied"]) == len(src) - 2


def test_same_vocabulary_still_reinitializes_embeddings_unless_asked():
    a, b = make(100, seed=1), make(100, seed=2)
    transfer(b, a.state_dict())
    assert not torch.equal(a.embed.weight, b.embed.weight) and not torch.equal(a.head.weight, b.head.weight)
    c = make(100, seed=3)
    transfer(c, a.state_dict(), TransferConfig(keep_embeddings=True))
    assert torch.equal(a.embed.weight, c.embed.weight) and torch.equal(a.head.weight, c.head.weight)


def test_reinit_and_freeze_by_part_and_layer_range():
    src = make(50, seed=1)
    dst = make(60, seed=2)
    before = {n: t.clone() for n, t in dst.state_dict().items()}
    report = transfer(dst, src.state_dict(), TransferConfig(reinit=["attn:1"], freeze=["mlp:0-1", "final_norm"]))
    assert {n for n in report["reinitialized"] if "attn" in n} == {f"layers.1.attn.{w}.weight" for w in
                                                                 ("wq", "wk", "wv", "wo")}
    assert torch.equal(dst.layers[1].attn.wq.weight, before["layers.1.attn.wq.weight"])
    assert torch.equal(dst.layers[0].attn.wq.weight, src.layers[0].attn.wq.weight)
    frozen = {n for n, p in dst.named_parameters() if not p.requires_grad}
    assert frozen == set(report["frozen"]) and "norm.weight" in frozen and len(frozen) == 7
    # A training step leaves frozen tensors untouched.
    opt = torch.optim.AdamW([p for p in dst.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(0, 60, (2, 16))
    dst(x, x)[1].backward()
    opt.step()
    assert torch.equal(dst.layers[0].mlp.w1.weight, src.layers[0].mlp.w1.weight)


def test_part_specs_are_validated():
    names = [n for n, _ in make(10, 0).named_parameters()]
    assert len(select(names, "block:0", 2)) == 9
    assert select(names, "norm", 2) == {f"layers.{i}.{k}.weight" for i in range(2) for k in ("attn_norm", "mlp_norm")}
    with pytest.raises(ValueError, match="'attn:0-5': the model has layers 0-1 only"):
        select(names, "attn:0-5", 2)
    with pytest.raises(SettingError, match="^freeze: 'mlp:2': the model has layers 0-1 only"):
        transfer(make(10, 0), make(10, 1).state_dict(), TransferConfig(freeze=["mlp:2"]))
    for bad in ("ffn", "mlp:", "attn:x", "attn:3-1", "head:0"):  # refused with the setting, before any model
        with pytest.raises(SettingError, match=rf"^reinit: '{bad}'.* got \['attn', '{bad}'\]$"):
            TransferConfig(reinit=["attn", bad])


def test_a_bad_part_spec_is_a_one_line_error_naming_the_setting_before_any_work(tmp_path, capsys):
    # Once "unknown part 'bogus': use ...", naming no option, after the text was tokenized.
    from ncalm.cli import main
    from ncalm.lm.checkpoint import save_checkpoint

    src = make(10, 0)
    save_checkpoint(tmp_path / "init.pt", {"model": src.state_dict(), "model_config": src.cfg.to_dict()})
    (tmp_path / "text.txt").write_text("some text. " * 100)
    run = ["pretrain", "--init", str(tmp_path / "init.pt"), "--text", str(tmp_path / "text.txt"), "--tokenizer",
           "byte", "--out", str(tmp_path / "run"), "--steps", "1", "--warmup", "0", "--seq-len", "16",
           "--batch-size", "1", "--no-progress"]
    for flag, value, said in (("--reinit", "bogus", "model.transfer.reinit: 'bogus' is not a part: use attn, mlp, "
                                                    "norm or block (each optionally :A or :A-B, layers A to B), "
                                                    "final_norm, embed or head, got ['bogus']"),
                              ("--freeze", "attn:1-0", "model.transfer.freeze: 'attn:1-0': the layers after ':' "
                                                       "must be A or A-B with A <= B, got ['attn:1-0']")):
        assert main([*run, flag, value]) == 2
        assert capsys.readouterr().err == f"ncalm pretrain: error: {said}\n"
        assert not (tmp_path / "run").exists()
    assert main([*run, "--reinit", "mlp:0-5"]) == 2  # the layers are the model's: known from --init (and overrides)
    assert capsys.readouterr().err.endswith("error: model.transfer.reinit: 'mlp:0-5': the model has layers 0-1 only\n")
    assert not (tmp_path / "run").exists()
    deeper = ["--set", "model.overrides={n_layer=3}"]
    assert main([*run, *deeper, "--reinit", "block:2"]) == 0  # a third layer, fresh
    assert main([*run, *deeper, "--freeze", "block:3", "--force"]) == 2
    assert capsys.readouterr().err.endswith("error: model.transfer.freeze: 'block:3': the model has layers 0-2 only\n")


def test_mismatched_shapes_are_refused_naming_the_tensor():
    src = make(50, seed=1)
    wide = LlamaLM(model_config("tiny", vocab_size=50, d_model=128))
    with pytest.raises(CheckpointError, match=r"layers\.0\.attn_norm\.weight.*\(64,\).*\(128,\)"):
        transfer(wide, src.state_dict())
    deep = LlamaLM(model_config("tiny", vocab_size=50, n_layer=3))
    with pytest.raises(CheckpointError, match=r"missing tensor 'layers\.2\."):
        transfer(deep, src.state_dict())
