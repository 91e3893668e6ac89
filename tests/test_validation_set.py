"""The validation set is a property of the data (data.val_sequences), not of the batch size."""
import pytest
import torch

from ncalm.data.config import DataConfig
from ncalm.lm.model import LlamaLM, model_config
from ncalm.settings import quietly
from ncalm.train import train
from ncalm.train.config import StageConfig
from ncalm.train.sources import build_source
from ncalm.train.trainer import evaluate


def _joined(batches):
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


@pytest.mark.parametrize("data", [
    DataConfig(kind="nca", seq_len=40, nca={"grid": 4, "colors": 3, "band": None}),
    DataConfig(kind="nca", seq_len=40, nca={"grid": 4, "colors": 3, "band": None}, control="shuffle-frames"),
    DataConfig(kind="dyck", seq_len=40)])
def test_other_batch_sizes_see_the_same_validation_tokens(data):
    source, _ = build_source(data)
    a, b = source.val_batches(4, 10), source.val_batches(3, 10)
    assert [len(x) for x, _ in a] == [4, 4, 2] and [len(x) for x, _ in b] == [3, 3, 3, 1]
    for t, u in zip(_joined(a), _joined(b)):
        assert torch.equal(t, u)
    # The loss per scored token does not depend on how the set is batched.
    torch.manual_seed(0)
    model = LlamaLM(model_config("tiny", vocab_size=source.vocab_size, max_seq_len=40))
    assert evaluate(model, a, "cpu", torch.no_grad) == pytest.approx(evaluate(model, b, "cpu", torch.no_grad), rel=1e-6)


def test_runs_with_other_batch_sizes_evaluate_on_identical_tokens(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"line {i} of the held-out text\n" for i in range(400)))
    seen = {}
    for batch in (2, 5):
        cfg = StageConfig.from_dict({
            "data": {"kind": "text", "seq_len": 16, "val_sequences": 7,
                     "text": {"source": str(corpus), "val_percent": 30.0}},
            "optim": {"batch_size": batch}, "run": {"out_dir": str(tmp_path / str(batch)), "steps": 1,
                                                    "eval_every": 0, "threads": 1, "progress": False}})
        source, _ = build_source(cfg.data)
        seen[batch] = _joined(source.val_batches(cfg.optim.batch_size, cfg.data.val_sequences))
        result = train(cfg)
        seen[batch] += (result["val_unigram_entropy"],)
    assert seen[2][0].shape == (7, 16)
    assert all(torch.equal(a, b) for a, b in zip(seen[2][:2], seen[5][:2])) and seen[2][2] == seen[5][2]


def test_eval_batches_of_older_configs_is_the_same_set_as_val_sequences():
    with quietly():
        old = StageConfig.from_dict({"optim": {"batch_size": 4}, "run": {"eval_batches": 3}})
        flat = StageConfig.from_dict({"batch_size": 2, "eval_batches": 5})
    assert old.data.val_sequences == 12 and flat.data.val_sequences == 10
    assert "eval_batches" not in old.to_dict()["run"]
