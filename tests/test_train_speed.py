"""The trainer's speed machinery on the CPU: step and data-wait timing, no host sync per step,
activation checkpointing, compile auto, pinned memory only for CUDA, and the prefetcher's batches."""
import sys
import time

import pytest
import torch

from ncalm.data.nca import NCASource
from ncalm.data.sharding import Prefetcher, device_batches, make_loader, pins_memory
from ncalm.lm.model import LlamaLM, model_config
from ncalm.nca.config import NCAConfig
from ncalm.train import StageConfig, train
from ncalm.train import trainer
from ncalm.train.metrics import read_metrics


def config(out, **run):
    return StageConfig.from_dict({
        "data": {"kind": "nca", "seq_len": 64, "nca": {"grid": 8, "colors": 4, "band": None}},
        "optim": {"lr": 3e-3, "warmup_steps": 2, "batch_size": 2, "grad_accum": 2},
        "run": {"out_dir": str(out), "steps": 6, "eval_every": 0, "eval_batches": 1, "ckpt_every": 0,
                "log_every": 3, "threads": 1, "progress": False, **run}})


def test_step_and_data_wait_times_are_recorded_and_data_wait_is_inside_the_step(tmp_path, monkeypatch):
    real = trainer.make_loader
    delay = 0.02

    def slow_loader(*a, **k):  # every micro-batch arrives `delay` late
        for batch in real(*a, **k):
            time.sleep(delay)
            yield batch

    monkeypatch.setattr(trainer, "make_loader", slow_loader)
    result = train(config(tmp_path))
    logs = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in logs] == [3, 6]
    for r in logs:  # 3 steps x 2 micro-batches per window
        assert 6 * delay <= r["data_wait_s"] <= r["step_s"]
    assert result["data_wait_s"] == pytest.approx(sum(r["data_wait_s"] for r in logs))
    assert result["step_s"] == pytest.approx(sum(r["step_s"] for r in logs))
    assert result["step_s"] <= result["elapsed_s"] + 1e-9


def test_the_loss_is_read_from_the_device_at_log_steps_only(tmp_path, monkeypatch):
    """.item() waits for the GPU: ncalm reads one per log step (and per evaluation batch), none per step.
    (torch's CPU AdamW reads its step counters with .item(); the fused CUDA AdamW does not.)"""
    counts = {}
    item = torch.Tensor.item

    def counted(self):
        if "/ncalm/" in sys._getframe(1).f_code.co_filename:
            counts[key] = counts.get(key, 0) + 1
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    for key, log_every in (("every step", 1), ("every 4", 4)):
        train(config(tmp_path / key, steps=12, log_every=log_every))
    assert counts == {"every step": 12 + 1, "every 4": 3 + 1}  # the log steps and the final evaluation's batch


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    cfg = model_config("tiny", vocab_size=64, max_seq_len=32)
    x = torch.randint(0, 64, (3, 32))
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = LlamaLM(cfg, checkpointing=checkpointing)
        loss = model(x, x)[1]
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_b, loss_a, atol=1e-6, rtol=0)
    for name, g in grads_a.items():
        torch.testing.assert_close(grads_b[name], g, atol=1e-6, rtol=0, msg=name)


def test_activation_checkpointing_recomputes_in_training_only():
    """Each block runs twice per training step with checkpointing (forward, then again in backward);
    once without it, and once in evaluation or with a KV cache."""
    cfg = model_config("tiny", vocab_size=64, max_seq_len=32)
    model = LlamaLM(cfg, checkpointing=True)
    calls = []  # the block's first module: recomputation stops early, once it has what backward needs
    model.layers[0].attn_norm.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randint(0, 64, (2, 16))
    model(x, x)[1].backward()
    assert len(calls) == 2
    calls.clear()
    with torch.no_grad():
        model(x)
    assert len(calls) == 1


def test_the_trainer_passes_activation_checkpointing_on_and_trains_the_same(tmp_path, monkeypatch):
    made = []
    real = trainer.LlamaLM
    monkeypatch.setattr(trainer, "LlamaLM", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    plain = train(config(tmp_path / "plain"))
    recomputed = train(config(tmp_path / "ckpt", activation_checkpointing=True))
    assert [m.checkpointing for m in made] == [False, True]
    assert recomputed["val_loss"] == pytest.approx(plain["val_loss"], abs=1e-5)


def test_compile_auto_is_off_on_the_cpu_and_on_for_cuda_with_triton(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert trainer.compiles("auto", cpu) is False
    assert trainer.compiles(True, cpu) is True and trainer.compiles(False, cuda) is False
    monkeypatch.setattr(trainer.importlib.util, "find_spec", lambda name: object() if name == "triton" else None)
    assert trainer.compiles("auto", cuda) is True
    monkeypatch.setattr(trainer.importlib.util, "find_spec", lambda name: None)
    assert trainer.compiles("auto", cuda) is False  # no Triton: torch.compile would fail on the first step


def test_compile_setting_forms():
    run = lambda value: StageConfig.from_dict({"run": {"compile": value}}).run.compile  # noqa: E731
    assert StageConfig().run.compile == "auto"
    assert run(True) is True and run(False) is False and run("auto") == "auto"
    with pytest.raises(ValueError, match=r"run.compile: must be auto, true or false, got 'yes'"):
        run("yes")


def test_pinned_memory_only_for_cuda():
    assert pins_memory("cuda") and pins_memory("cuda:1") and pins_memory(torch.device("cuda", 0))
    assert not pins_memory("cpu") and not pins_memory(torch.device("cpu"))


def nca_source():
    return NCASource(NCAConfig(grid=8, colors=4, seq_len=64, band=None), seed=3, pool_size=4, epoch_sequences=8)


def test_the_prefetcher_yields_the_loaders_batches_in_order():
    plain = make_loader(nca_source(), 3, start=2)
    ahead = Prefetcher(make_loader(nca_source(), 3, start=2), "cpu", depth=2)
    try:
        for _ in range(7):  # crosses rule-pool epochs (8 sequences each)
            (ax, ay), (bx, by) = next(plain), next(ahead)
            assert torch.equal(ax, bx) and torch.equal(ay, by)
    finally:
        ahead.close()
    assert not ahead._thread.is_alive()


def test_the_prefetcher_raises_the_loaders_error_and_ends_with_it():
    def batches():
        yield torch.zeros(1, 2), torch.ones(1, 2)
        raise ValueError("bad shard")

    ahead = Prefetcher(batches(), "cpu")
    assert torch.equal(next(ahead)[1], torch.ones(1, 2))
    with pytest.raises(ValueError, match="bad shard"):
        next(ahead)
    finite = Prefetcher(iter([(torch.zeros(1), torch.zeros(1))]), "cpu")
    assert len(list(finite)) == 1


def test_the_cpu_trainer_reads_batches_without_a_prefetcher():
    loader = iter([])
    assert device_batches(loader, "cpu") is loader


def test_the_gpu_training_benchmark_runs_its_code_path_on_the_cpu(tmp_path, monkeypatch, capsys):
    """benchmarks/bench_train_gpu.py --cpu-smoke: the micro-batch search, train() per configuration, the
    figures read from the trainer's metrics, the table and the JSON (no GPU figures: tiny, fp32)."""
    import json
    import runpy
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "bench_train_gpu.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--cpu-smoke", "--json", str(tmp_path / "bench.json")])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name="__main__")
    assert done.value.code == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["smoke"] and report["micro_batches"] == {"tiny": 4}  # the cap: 8 sequences a step, at most 4
    assert [(r["data"], r["micro_batch"], r["grad_accum"]) for r in report["rows"]] == [("nca", 4, 2), ("text", 4, 2)]
    for r in report["rows"]:
        assert r["tokens_per_s"] > 0 and 0 <= r["data_wait_share"] <= 1 and r["mfu"] is None
        assert r["tokens_per_s"] == pytest.approx(report["tokens_per_step"] / r["step_s"])
    table = capsys.readouterr().out.split("== ncalm training speed")[1]
    assert "tiny   nca   no" in table and "tiny   text  no" in table
    from ncalm.train import trainer

    assert trainer.save_checkpoint.__module__ == "ncalm.lm.checkpoint"  # put back after the run


def test_the_benchmarks_micro_batch_search_and_out_of_memory_retry(monkeypatch):
    """What only a GPU's memory limit triggers, simulated: the power-of-two search stops below the first
    size that runs out of memory, and a run that still does retries at half the micro-batch."""
    import runpy
    from contextlib import nullcontext
    from pathlib import Path

    bench = runpy.run_path(str(Path(__file__).parent.parent / "benchmarks" / "bench_train_gpu.py"))
    tried = []
    real_step = trainer.train_step

    def step(net, fwd, batches, *a, **k):
        x, _ = next(batches)
        tried.append(len(x))
        if len(x) > 4:
            raise torch.OutOfMemoryError("simulated")
        return real_step(net, fwd, iter([(x, x)]), *a, **k)

    monkeypatch.setattr(trainer, "train_step", step)
    mc = model_config("tiny", vocab_size=64, max_seq_len=16)
    assert bench["largest_micro_batch"](mc, 16, 64, torch.device("cpu"), nullcontext) == 4
    assert tried == [1, 2, 4, 8]

    b = bench["Bench"](smoke=True, device=torch.device("cpu"), card="cpu", peak=None, steps=2, seq=16, vocab=64,
                       seqs_per_step=16, budget=None, json_path=None)
    b.report = {"micro_batches": {"tiny": 8}, "sdpa": {}}
    calls = []

    def measure(cfg, steps, peak):
        calls.append(cfg.optim.batch_size)
        if cfg.optim.batch_size > 2:
            raise torch.OutOfMemoryError("simulated")
        return {"tokens_per_s": 1.0}

    b.run.__func__.__globals__["measure"] = measure
    row = b.run("tiny", {"kind": "dyck", "seq_len": 16}, False, Path("unused"))
    assert calls == [8, 4, 2] and row["micro_batch"] == 2 and row["grad_accum"] == 8
    b.budget = 0.0
    assert "skipped" in b.run("base", {"kind": "dyck", "seq_len": 16}, True, Path("unused"))


@pytest.mark.slow
def test_a_compiled_stage_trains_as_the_eager_one_and_drops_its_compiled_code(tmp_path, monkeypatch):
    """run.compile=true on the CPU (auto would not): the same losses, and dynamo's cache is emptied after
    the stage, so that the stages of an experiment do not pile up recompilations of one forward."""
    resets = []
    real_reset = torch._dynamo.reset
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1) or real_reset())
    eager = train(config(tmp_path / "eager", steps=2, log_every=1))
    assert not resets
    compiled = train(config(tmp_path / "compiled", steps=2, log_every=1, compile=True))
    assert resets == [1]
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], abs=1e-4)
