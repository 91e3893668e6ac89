import pytest
import torch

from ncalm.lm.checkpoint import CheckpointError
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.transfer import TOKEN_SPACE, TransferConfig, select, transfer



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
    with pytest.raises(ValueError, match="outside 0-1"):
        select(names, "attn:0-5", 2)
    with pytest.raises(ValueError, match="unknown part"):
        select(names, "ffn", 2)


def test_mismatched_shapes_are_refused_naming_the_tensor():
    src = make(50, seed=1)
    wide = LlamaLM(model_config("tiny", vocab_size=50, d_model=128))
    with pytest.raises(CheckpointError, match=r"layers\.0\.attn_norm\.weight.*\(64,\).*\(128,\)"):
        transfer(wide, src.state_dict())
    deep = LlamaLM(model_config("tiny", vocab_size=50, n_layer=3))
    with pytest.raises(CheckpointError, match=r"missing tensor 'layers\.2\."):
        transfer(deep, src.state_dict())
