import json
import math
import os
import re
import signal

import pytest
import torch

from ncalm.lm.checkpoint import load_checkpoint, load_model
from ncalm.cli import main
from ncalm.lm.config import TransferConfig
from ncalm.settings import quietly
from ncalm.train import OptimConfig, StageConfig, train
from ncalm.train.metrics import read_metrics

TIMED = ("tokens_per_s", "elapsed_s", "step_s", "data_wait_s")  # wall-clock figures in metrics records
NCA = dict(kind="nca", seq_len=64, nca={"grid": 8, "colors": 4, "band": None})


def config(out, **kw):
    base = dict(out_dir=str(out), data=NCA, steps=8, batch_size=2, grad_accum=2, eval_every=4,
                eval_batches=1, ckpt_every=0, log_every=1, threads=1, progress=False,
                optim=OptimConfig(lr=3e-3, warmup_steps=2))
    base.update(kw)
    with quietly():  # the flat layout of the TrainConfig before the config tree, as old checkpoints hold it
        return StageConfig.from_dict(base)


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    full = train(config(tmp_path / "full"))
    part = train(config(tmp_path / "part", stop_at=5))
    assert part["step"] == 5 and not part["finished"]
    resumed = train(config(tmp_path / "part", resume=True))
    assert resumed["finished"] and resumed["step"] == 8
    a, b = load_checkpoint(tmp_path / "full/checkpoint.pt"), load_checkpoint(tmp_path / "part/checkpoint.pt")
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), name
    for pid, s in a["optimizer"]["state"].items():
        assert torch.equal(s["exp_avg_sq"], b["optimizer"]["state"][pid]["exp_avg_sq"])
    assert full["val_loss"] == resumed["val_loss"]
    steps = [r["step"] for r in read_metrics(tmp_path / "part/metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))  # the interrupted run's records are not duplicated


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; kill or a scheduler's pre-emption
def test_ctrl_c_mid_step_leaves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch, sig):
    from ncalm.train import trainer

    real = trainer.make_loader

    def interrupted_loader(*a, **k):
        def batches():
            for n, batch in enumerate(real(*a, **k)):
                if n == 4:  # the first micro-batch of step 3 (two per step)
                    os.kill(os.getpid(), sig)
                yield batch
        return batches()

    monkeypatch.setattr(trainer, "make_loader", interrupted_loader)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "part"))
    assert load_checkpoint(tmp_path / "part/checkpoint.pt")["step"] == 3  # step 3 was finished, then saved
    monkeypatch.setattr(trainer, "make_loader", real)
    resumed = train(config(tmp_path / "part", resume=True))
    full = train(config(tmp_path / "full"))
    a, b = load_checkpoint(tmp_path / "full/checkpoint.pt"), load_checkpoint(tmp_path / "part/checkpoint.pt")
    assert all(torch.equal(t, b["model"][name]) for name, t in a["model"].items())
    assert resumed["val_loss"] == full["val_loss"]
    def untimed(run):
        return [{k: v for k, v in r.items() if k not in TIMED}
                for r in read_metrics(tmp_path / run / "metrics.jsonl")]

    assert untimed("part") == untimed("full")  # not a record more or less than without the interruption


def test_a_fresh_start_crashing_before_its_first_save_leaves_no_stale_checkpoint(tmp_path, monkeypatch):
    from ncalm.train import trainer

    train(config(tmp_path / "r", stop_at=2))

    def broken_loader(*a, **k):
        raise RuntimeError("data went away")

    monkeypatch.setattr(trainer, "make_loader", broken_loader)
    with pytest.raises(RuntimeError, match="data went away"):
        train(config(tmp_path / "r"))  # what --force does: start over in a run directory
    # The new config.json and empty metrics must not sit beside the old run's weights.
    assert not (tmp_path / "r/checkpoint.pt").exists()
    assert [r["step"] for r in read_metrics(tmp_path / "r/metrics.jsonl")] == [0]  # the new run's first eval


def test_resume_survives_a_metrics_line_torn_by_the_kill(tmp_path):
    train(config(tmp_path / "r", stop_at=5))
    with open(tmp_path / "r/metrics.jsonl", "a") as f:
        f.write('{"step": 6, "tok')  # the process died inside this write
    assert train(config(tmp_path / "r", resume=True))["finished"]
    steps = [r["step"] for r in read_metrics(tmp_path / "r/metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not a JSON record"):  # only a torn last line is forgiven
        read_metrics(tmp_path / "bad.jsonl")


def test_resume_of_a_finished_run_does_no_work_and_changes_nothing(tmp_path):
    first = train(config(tmp_path / "r", steps=3))
    before = (tmp_path / "r/checkpoint.pt").read_bytes()
    again = train(config(tmp_path / "r", steps=3, resume=True))
    assert again["step"] == 3 and again["val_loss"] == first["val_loss"]
    assert (tmp_path / "r/checkpoint.pt").read_bytes() == before


def test_resume_refuses_a_different_layout(tmp_path):
    train(config(tmp_path / "r", steps=2))
    with pytest.raises(ValueError, match=re.escape("config.optim.batch_size: 2 -> 3")):
        train(config(tmp_path / "r", steps=4, batch_size=3, resume=True))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(config(tmp_path / "none", resume=True))
    with pytest.raises(ValueError, match=re.escape("config.optim.lr: 0.003 -> 0.01")):
        train(config(tmp_path / "r", steps=4, resume=True, optim=OptimConfig(lr=1e-2, warmup_steps=2)))


def test_resume_with_more_steps_trains_on_and_says_the_schedule_changes(tmp_path, capsys):
    train(config(tmp_path / "r", steps=2))
    longer = train(config(tmp_path / "r", steps=4, resume=True))
    assert longer["finished"] and longer["step"] == 4
    assert "warning: resuming with 4 steps instead of 2" in capsys.readouterr().err


def test_resume_with_fewer_steps_than_done_is_refused(tmp_path):
    # It once went on to report "4/2 steps" and recorded steps 2 in config.json.
    train(config(tmp_path / "r", steps=4))
    with pytest.raises(ValueError, match=r"^run.steps: the checkpoint in .* is at step 4, past the 2 steps"):
        train(config(tmp_path / "r", steps=2, resume=True))


def test_a_fresh_start_removes_the_previous_runs_best_checkpoint(tmp_path):
    cfg = config(tmp_path / "r", steps=2, eval_every=1)
    train(cfg.replace(run=cfg.run.replace(keep_best=True)))
    assert (tmp_path / "r" / "best.pt").exists()
    train(config(tmp_path / "r", steps=2))  # started over (--force), without keep_best
    assert not (tmp_path / "r" / "best.pt").exists()


def test_nca_loss_falls_below_the_streams_unigram_entropy(tmp_path):
    result = train(config(tmp_path / "nca", steps=60, batch_size=4, grad_accum=1, eval_every=60, eval_batches=2,
                          optim=OptimConfig(lr=1e-2, warmup_steps=5)))
    curve = result["val_curve"]
    assert curve[0][0] == 0 and curve[-1][0] == result["tokens"] == 60 * 4 * 64
    assert result["val_loss"] < result["val_unigram_entropy"] < curve[0][1]


def test_train_config_round_trips_through_a_dict_and_names_stray_keys(tmp_path):
    cfg = config(tmp_path / "c")
    assert StageConfig.from_dict(cfg.to_dict()) == cfg
    d = cfg.to_dict()
    d["optim"]["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"optim\.momentum: unknown setting; known: batch_size, beta1"):
        StageConfig.from_dict(d)


def test_max_tokens_sets_the_step_count(tmp_path):
    result = train(config(tmp_path / "t", max_tokens=1000, batch_size=2, grad_accum=1, eval_every=0))
    assert result["total_steps"] == 8 and result["tokens_per_step"] == 128


def test_model_overrides_apply_on_top_of_an_init_checkpoint(tmp_path):
    nca = train(config(tmp_path / "nca", eval_every=0))["checkpoint"]
    lang = dict(kind="dyck", seq_len=32, dyck_k=2, dyck_depth=4)
    result = train(config(tmp_path / "lang", data=lang, steps=2, eval_every=0, init=str(nca),
                          model_overrides={"max_seq_len": 96}))
    cfg, base = (load_checkpoint(p)["model_config"] for p in (result["checkpoint"], nca))
    assert cfg["max_seq_len"] == 96 and cfg["n_layer"] == base["n_layer"]


def test_resume_refuses_another_frozen_set(tmp_path):
    nca = train(config(tmp_path / "nca", steps=2, eval_every=0))["checkpoint"]
    lang = dict(kind="dyck", seq_len=32, dyck_k=2, dyck_depth=4)
    run = dict(data=lang, steps=4, eval_every=0, init=str(nca))
    train(config(tmp_path / "lang", stop_at=2, transfer=TransferConfig(freeze=["attn:0"]), **run))
    # Same-sized optimizer groups; no --init at all.
    for init, freeze, said in ((str(nca), ["attn:1"], 'config.model.transfer.freeze: ["attn:0"] -> ["attn:1"]'),
                               (None, [], f'config.model.init: "{nca}" -> null')):
        with pytest.raises(ValueError, match=re.escape(said)):
            train(config(tmp_path / "lang", resume=True, transfer=TransferConfig(freeze=freeze), **{**run, "init": init}))
    done = train(config(tmp_path / "lang", resume=True, transfer=TransferConfig(freeze=["attn:0"]), **run))
    assert done["finished"] and done["step"] == 4


def test_init_refuses_another_shape_head_split_or_rotary_base_before_any_work(tmp_path):
    # Another layer count or width was once "missing tensor 'layers.2.attn_norm.weight'" (or a shape of one
    # tensor), said after the data was read and the run's folder written.
    nca = train(config(tmp_path / "nca", steps=2, eval_every=0))["checkpoint"]  # tiny: 2 layers, 64 wide, 4 heads
    lang = dict(kind="dyck", seq_len=32, dyck_k=2, dyck_depth=4)
    fit = "its tensors do not fit this model"
    for override, said in (({"n_layer": 3}, "n_layer=2 there but 3 here; it has no layer 2: pass --reinit block:2 to "
                                             "start it fresh, or drop n_layer from model.overrides to take the"),
                           ({"n_layer": 1}, f"n_layer=2 there but 1 here; {fit}: drop n_layer from model.overrides"),
                           ({"d_model": 128}, "d_model=64 there but 128"),
                           ({"mlp_hidden": 128}, "mlp_hidden=192 there but 128 here"),
                           ({"n_head": 8}, "n_head=4 there but 8 here; the copied attention weights"),
                           ({"rope_theta": 500000.0}, "rope_theta=10000.0 there but 500000.0 here")):
        with pytest.raises(ValueError, match=rf"^--init .*checkpoint.pt: {said}"):
            train(config(tmp_path / "lang", data=lang, steps=2, eval_every=0, init=str(nca), model_overrides=override))
    with pytest.raises(ValueError, match="n_layer=2 there but 4 here; it has no layers 2-3: pass --reinit block:2-3 "
                                         "to start them fresh, or leave out --model mini to take"):
        train(config(tmp_path / "lang", data=lang, steps=2, eval_every=0, init=str(nca), model="mini"))
    assert not (tmp_path / "lang").exists()
    deeper = TransferConfig(reinit=["block:3", "attn:2", "mlp:2", "norm:2"])  # layers the checkpoint lacks, fresh
    assert train(config(tmp_path / "lang", data=lang, steps=1, eval_every=0, init=str(nca), transfer=deeper,
                        model_overrides={"n_layer": 4}))["finished"]


def test_cli_prepretrain_then_pretrain_with_init(tmp_path, capsys):
    nca = tmp_path / "nca"
    small = ["--steps", "4", "--batch-size", "2", "--seq-len", "64", "--val-sequences", "2", "--eval-every", "2",
             "--threads", "1", "--no-progress"]
    assert main(["prepretrain", "--out", str(nca), "--grid", "8", "--colors", "4", "--band", "none", *small]) == 0
    model, tok, meta = load_model(nca / "checkpoint.pt")
    assert tok is None and meta["spec"]["data"]["kind"] == "nca" and model.cfg.vocab_size == 4 ** 4 + 2
    lang = tmp_path / "lang"
    assert main(["pretrain", "--out", str(lang), "--init", str(nca / "checkpoint.pt"), "--max-bytes", "200k",
                 "--freeze", "attn", *small]) == 0
    out = capsys.readouterr().out
    assert "validation loss" in out and "unigram entropy" in out
    model2, tok2, meta2 = load_model(lang / "checkpoint.pt")
    assert tok2.vocab_size == model2.cfg.vocab_size == 257
    assert torch.equal(model2.layers[0].attn.wq.weight, model.layers[0].attn.wq.weight)  # frozen
    assert not torch.equal(model2.layers[0].mlp.w1.weight, model.layers[0].mlp.w1.weight)  # trained
    assert meta2["init"] == str(nca / "checkpoint.pt") and len(meta2["transfer"]["frozen"]) == 8
    assert json.loads((lang / "config.json").read_text())["model"]["transfer"]["freeze"] == ["attn"]


def test_cli_bad_option_values_are_one_line_errors(tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path), "--reinit", "attn"]) == 2
    assert "--init" in capsys.readouterr().err
    assert main(["prepretrain", "--out", str(tmp_path), "--data", "dyck", "--dyck-depth", "0", "--no-progress"]) == 2
    assert "data.dyck.depth: must be >= 1, got 0" in capsys.readouterr().err
    out = tmp_path / "nca"
    assert main(["prepretrain", "--out", str(out), "--colors", "4", "--band", "0.5,1.0", "--grid", "8",
                 "--seq-len", "32", "--batch-size", "1", "--val-sequences", "2", "--no-progress"]) == 2
    # Named by its setting, with what to do, and refused before --out holds a config.json of a run never made.
    err = capsys.readouterr().err
    assert err.startswith("ncalm prepretrain: error: data.nca.band: no rule of this NCA config scores inside "
                          "(0.5, 1) (65,536 candidates tried): widen the band; `ncalm show`") and err.count("\n") == 1
    assert not out.exists()
    for flag, value, said in (("--grad-clip", "-1", "optim.grad_clip: must be >= 0, got -1.0"),
                              ("--weight-decay", "-0.1", "optim.weight_decay: must be >= 0, got -0.1")):
        assert main(["prepretrain", "--out", str(tmp_path), "--data", "dyck", flag, value, "--no-progress"]) == 2
        assert said in capsys.readouterr().err


def test_gpu_generator_request_without_a_usable_gpu_says_why(tmp_path):
    from ncalm.nca.cuda import cuda_status

    if cuda_status()[0]:
        pytest.skip("a usable GPU is present")
    with pytest.raises(ValueError, match="CUDA|GPU"):
        train(config(tmp_path / "g", data=dict(**NCA, gen_device="cuda")))
    auto = train(config(tmp_path / "a", steps=1, data=dict(**NCA, gen_device="auto")))
    assert auto["step"] == 1


def test_auto_generates_on_the_cpu_where_the_gpu_kernels_cannot_take_the_config(monkeypatch):
    # A grid past the kernels' shared memory reached CudaGenerator under data.gen_device=auto and
    # stopped the run on a GPU, where `ncalm generate --device auto` falls back to the CPU.
    import ncalm.nca.cuda
    from ncalm import _core
    from ncalm.data.config import DataConfig
    from ncalm.train.sources import generator_device

    if not _core.built_with_cuda:
        pytest.skip("a build without CUDA never offers the GPU backend")
    monkeypatch.setattr(ncalm.nca.cuda, "cuda_status", lambda cpu: (True, "1 CUDA device(s)"))  # as on a GPU
    fits, too_big = {"grid": 12}, {"grid": 400, "patch": 4, "colors": 2}  # 10,000 patches a frame
    assert generator_device(DataConfig(nca=fits), "cuda:0") == "cuda:0"
    assert generator_device(DataConfig(nca=too_big, seq_len=20_004), "cuda:0") == "cpu"
    with pytest.raises(ValueError, match=r"^gen_device: 'cuda': CUDA backend: a 400x400 grid .* shared memory"):
        generator_device(DataConfig(nca=too_big, seq_len=20_004, gen_device="cuda"), "cuda:0")


def test_auto_takes_the_cpu_where_the_gpu_cannot_serve_but_a_config_error_stays_an_error(monkeypatch):
    # The fallback to the CPU once caught the config's own error too, and answered "cpu".
    import ncalm.nca.cuda
    from ncalm.data.config import DataConfig
    from ncalm.train.sources import generator_device

    monkeypatch.setattr(ncalm.nca.cuda, "cuda_status", lambda cpu: (True, "1 CUDA device(s)"))  # as on a GPU
    cfg = DataConfig(kind="dyck", seq_len=10**8)  # fine for Dyck data, past the NCA core's longest sequence
    assert cfg.gen_device == "auto"
    with pytest.raises(ValueError, match="^seq_len: 100000000 is out of range"):
        generator_device(cfg, "cuda:0")


def test_dataloader_workers_train_exactly_like_the_main_process(tmp_path):
    runs = [train(config(tmp_path / f"w{w}", steps=3, eval_every=0, data=dict(**NCA, workers=w)))
            for w in (0, 2)]
    a, b = (load_checkpoint(r["checkpoint"])["model"] for r in runs)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    # The path CUDA takes by default (precision auto), exercised here on the CPU.
    fp32 = train(config(tmp_path / "fp32", steps=4, precision="fp32"))
    bf16 = train(config(tmp_path / "bf16", steps=4, precision="bf16"))
    assert bf16["finished"] and math.isfinite(bf16["val_loss"])
    assert bf16["val_loss"] != fp32["val_loss"]  # autocast changed the arithmetic ...
    assert bf16["val_loss"] == pytest.approx(fp32["val_loss"], rel=0.05)  # ... not the model
    state = load_checkpoint(tmp_path / "bf16/checkpoint.pt")
    assert all(t.dtype == torch.float32 for t in state["model"].values())  # master weights stay fp32


def untimed(path):
    """A metrics.jsonl without its wall-clock fields, for comparing runs."""
    return [{k: v for k, v in r.items() if k not in TIMED} for r in read_metrics(path)]


def test_stop_at_then_resume_records_exactly_what_an_uninterrupted_run_records(tmp_path):
    # Step 5 is neither a log (every 3) nor an eval step (every 4): stopping there only adds a checkpoint.
    full = train(config(tmp_path / "full", log_every=3))
    part = train(config(tmp_path / "part", log_every=3, stop_at=5))
    assert part["step"] == 5 and load_checkpoint(tmp_path / "part/checkpoint.pt")["step"] == 5
    resumed = train(config(tmp_path / "part", log_every=3, resume=True))
    assert untimed(tmp_path / "part/metrics.jsonl") == untimed(tmp_path / "full/metrics.jsonl")
    assert resumed["val_curve"] == full["val_curve"] and [t for t, _ in full["val_curve"]] == [0, 1024, 2048]
    assert [r["step"] for r in read_metrics(tmp_path / "full/metrics.jsonl") if "loss" in r] == [3, 6, 8]


@pytest.mark.parametrize("when", ["last step", "final evaluation"])
def test_ctrl_c_at_the_end_of_a_run_still_stops_the_caller(tmp_path, monkeypatch, when):
    from ncalm.experiment.runner import run_stage
    from ncalm.train import trainer

    real_loader, real_evaluate = trainer.make_loader, trainer.evaluate
    evals = []

    def loader(*a, **k):
        for n, batch in enumerate(real_loader(*a, **k)):
            if n == 14 and when == "last step":  # the first micro-batch of step 8 of 8
                os.kill(os.getpid(), signal.SIGINT)
            yield batch

    def evaluate(*a, **k):
        evals.append(1)
        if len(evals) == 3 and when == "final evaluation":  # steps 0, 4, 8
            os.kill(os.getpid(), signal.SIGINT)
        return real_evaluate(*a, **k)

    monkeypatch.setattr(trainer, "make_loader", loader)
    monkeypatch.setattr(trainer, "evaluate", evaluate)
    with pytest.raises(KeyboardInterrupt):  # was swallowed: an experiment went on to its next stage
        train(config(tmp_path / "part"))
    assert load_checkpoint(tmp_path / "part/checkpoint.pt")["step"] == 8
    monkeypatch.setattr(trainer, "make_loader", real_loader)
    monkeypatch.setattr(trainer, "evaluate", real_evaluate)
    # Rerunning the experiment resumes the stage, finds it finished and marks it done.
    done = run_stage(config(tmp_path / "part"), lambda *a, **k: None)
    assert done["finished"] and (tmp_path / "part/done.json").exists()
    full = train(config(tmp_path / "full"))
    assert done["val_loss"] == full["val_loss"]
    assert untimed(tmp_path / "part/metrics.jsonl") == untimed(tmp_path / "full/metrics.jsonl")


@pytest.mark.parametrize("caller, hint", [("train", "rerun with --resume to continue"),
                                          ("experiment", "rerun the same ncalm experiment command to continue")])
def test_ctrl_c_tells_how_the_caller_continues(tmp_path, monkeypatch, capsys, caller, hint):
    # `ncalm experiment` has no --resume: it was told to pass one.
    from ncalm.experiment.runner import run_stage
    from ncalm.train import trainer

    real = trainer.make_loader

    def loader(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)  # during the first step
        yield from real(*a, **k)

    monkeypatch.setattr(trainer, "make_loader", loader)
    cfg = config(tmp_path / "r", steps=2, eval_every=0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg) if caller == "train" else run_stage(cfg, lambda *a, **k: None)
    said = capsys.readouterr().err.strip()
    assert said == f"interrupted after step 1: checkpoint {tmp_path / 'r/checkpoint.pt'}; {hint}"


def test_resume_refuses_settings_it_would_ignore(tmp_path):
    nca = train(config(tmp_path / "nca", steps=1, eval_every=0))["checkpoint"]
    text = dict(kind="text", seq_len=32, text="stdlib", max_bytes=50_000, max_val_bytes=20_000)
    run = dict(data=text, steps=3, eval_every=0, init=str(nca))
    train(config(tmp_path / "r", stop_at=1, **run))
    before = (tmp_path / "r/config.json").read_text()
    for change, said in ((dict(model="small"), 'config.model.size: null -> "small"'),
                         (dict(model_overrides={"mlp_hidden": 96}), "config.model.overrides.mlp_hidden: (unset) -> 96"),
                         (dict(precision="bf16"), 'precision: "fp32" -> "bf16"'),
                         (dict(seed=1), "config.run.seed: 0 -> 1"),
                         (dict(data={**text, "tokenizer": "bpe"}), 'config.data.text.tokenizer: "byte" -> "bpe"'),
                         (dict(transfer=TransferConfig(reinit=["attn"])),
                          'config.model.transfer.reinit: [] -> ["attn"]'),
                         (dict(transfer=TransferConfig(keep_embeddings=True)),
                          "config.model.transfer.keep_embeddings: false -> true")):
        with pytest.raises(ValueError, match="cannot resume: .*" + re.escape(said)):
            train(config(tmp_path / "r", resume=True, **{**run, **change}))
    assert (tmp_path / "r/config.json").read_text() == before  # not rewritten with the refused values
    # precision is compared as resolved: auto is fp32 on the CPU.
    assert train(config(tmp_path / "r", resume=True, precision="fp32", **run))["finished"]


def test_resume_without_model_asks_for_nothing_and_explicit_tiny_is_the_default(tmp_path):
    train(config(tmp_path / "r", model="tiny", steps=3, stop_at=1, eval_every=0))
    with pytest.raises(ValueError, match=re.escape('config.model.size: "tiny" -> "small"')):
        train(config(tmp_path / "r", resume=True, model="small", steps=3, eval_every=0))
    assert train(config(tmp_path / "r", resume=True, steps=3, stop_at=2, eval_every=0))["step"] == 2
    train(config(tmp_path / "d", steps=2, stop_at=1, eval_every=0))  # no --model: tiny
    assert train(config(tmp_path / "d", resume=True, model="tiny", steps=2, eval_every=0))["finished"]


def _bpe_text(spec, vocab=280):
    return dict(kind="text", seq_len=32, text=str(spec), tokenizer="bpe", bpe_vocab=vocab, val_percent=20.0,
                      max_bytes=60_000, max_val_bytes=20_000)


def test_keep_embeddings_tokenizes_with_the_init_checkpoints_tokenizer(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(10):
        (corpus / f"d{i}.txt").write_text(" ".join(f"cell{(i * j) % 37} rule grid" for j in range(400)))
    first = train(config(tmp_path / "a", data=_bpe_text("stdlib"), steps=1, eval_every=0))["checkpoint"]
    # Another corpus, the same vocabulary size: a BPE of its own would give the copied rows other tokens.
    keep = TransferConfig(keep_embeddings=True)
    second = train(config(tmp_path / "b", data=_bpe_text(corpus), steps=1, eval_every=0, init=first, transfer=keep))
    a, b = load_checkpoint(first), load_checkpoint(second["checkpoint"])
    assert b["tokenizer"] == a["tokenizer"] and "embed.weight" in b["transfer"]["copied"]
    with pytest.raises(ValueError, match=r"tokenizer of .* \(bpe with 280 tokens\), but this stage asks for byte: "
                                         r"pass --tokenizer bpe --bpe-vocab 280"):
        train(config(tmp_path / "c", data={**_bpe_text(corpus), "tokenizer": "byte"}, steps=1, init=first,
                     transfer=keep))


def test_keep_embeddings_from_gpt2_asks_for_gpt2(tmp_path, monkeypatch, capsys):
    # GPT-2's tokenizer is a BPE of 50257 tokens: the advice was once --tokenizer bpe --bpe-vocab 50257, and
    # config.json then said bpe. A BPE of our own stands for GPT-2's here (whose files tests do not have).
    import ncalm.lm.tokenizer as lt
    from ncalm.lm.checkpoint import save_checkpoint
    from ncalm.lm.model import LlamaLM, model_config

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"d{i}.txt").write_text(" ".join(f"cell{(i * j) % 37} rule grid" for j in range(300)))
    tok = lt.BPETokenizer.train(["cell rule grid " * 50], 280)
    monkeypatch.setattr(lt, "GPT2_DIGEST", lt.bpe_digest(tok.to_hf_json()))
    monkeypatch.delenv("NCALM_GPT2_FILES", raising=False)  # the kept tokenizer is used, not GPT-2's files
    model = LlamaLM(model_config("tiny", vocab_size=tok.vocab_size))
    init = tmp_path / "gpt2.pt"
    save_checkpoint(init, {"model": model.state_dict(), "model_config": model.cfg.to_dict(), "tokenizer": tok.to_dict()})
    run = dict(steps=1, eval_every=0, init=str(init), transfer=TransferConfig(keep_embeddings=True))
    for asked, said in (("byte", "byte"), ("bpe", "bpe with 280 tokens")):
        with pytest.raises(ValueError, match=rf"tokenizer of .*gpt2.pt \(gpt2\), but this stage asks for {said}: "
                                             r"pass --tokenizer gpt2$"):
            train(config(tmp_path / "a", data={**_bpe_text(corpus), "tokenizer": asked}, **run))
    out = train(config(tmp_path / "b", data={**_bpe_text(corpus), "tokenizer": "gpt2"}, **run))
    assert json.loads((tmp_path / "b" / "config.json").read_text())["data"]["text"]["tokenizer"] == "gpt2"
    capsys.readouterr()
    assert main(["export-hf", out["checkpoint"], str(tmp_path / "hf")]) == 0
    assert capsys.readouterr().out.strip().endswith("gpt2 tokenizer")


def test_keep_embeddings_refuses_an_init_without_a_text_tokenizer(tmp_path):
    nca = train(config(tmp_path / "nca", steps=1, eval_every=0))["checkpoint"]  # 258 tokens, as a BPE-258 vocabulary
    with pytest.raises(ValueError, match="trained on nca data, which has no text tokenizer"):
        train(config(tmp_path / "lang", data=_bpe_text("stdlib", vocab=258), steps=1, eval_every=0, init=nca,
                     transfer=TransferConfig(keep_embeddings=True)))


def _nanogpt_folder(root, vocab=20, tokens=4000):
    """Token files as nanoGPT's char-level prepare.py leaves them: train.bin, val.bin and meta.pkl, no tokenizer.json."""
    import pickle

    import numpy as np

    root.mkdir()
    ids = np.random.default_rng(0).integers(0, vocab, tokens).astype(np.uint16)
    ids[: tokens * 9 // 10].tofile(root / "train.bin")
    ids[tokens * 9 // 10:].tofile(root / "val.bin")
    itos = {i: chr(97 + i) for i in range(vocab)}
    (root / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": vocab, "itos": itos, "stoi": {c: i for i, c in itos.items()}}))
    return f"bin:{root}"


def test_text_of_token_files_without_a_tokenizer_is_said_so(tmp_path, capsys):
    # Once "trained on text data, which has no text tokenizer" and, from export-hf, "the checkpoint was
    # not trained on text": both of a run on nanoGPT's char-level token files.
    bins = dict(kind="text", seq_len=32, text=_nanogpt_folder(tmp_path / "ng"))
    ckpt = train(config(tmp_path / "a", data=bins, steps=1, eval_every=0))["checkpoint"]
    with pytest.raises(ValueError, match=r"--keep-embeddings: .*checkpoint.pt was trained on token files without a "
                                         r"tokenizer.json, so .*; leave out --keep-embeddings$"):
        train(config(tmp_path / "b", data=bins, steps=1, init=ckpt, transfer=TransferConfig(keep_embeddings=True)))
    capsys.readouterr()
    assert main(["export-hf", ckpt, str(tmp_path / "hf")]) == 0
    assert capsys.readouterr().out.strip().endswith("no tokenizer (none was saved with the checkpoint: it was trained "
                                                    "on token files without a tokenizer.json)")


def test_model_overrides_cannot_set_the_vocabulary(tmp_path):
    with pytest.raises(ValueError, match=r"model\.overrides: vocab_size cannot be set: the vocabulary comes from"):
        config(tmp_path / "v", model_overrides={"vocab_size": 300})


def test_a_diverging_run_is_announced_once(tmp_path, capsys):
    # lr 1e5 without clipping blows the weights up within a few steps.
    cfg = config(tmp_path / "r", optim=OptimConfig(lr=1e5, warmup_steps=1, grad_clip=0.0))
    result = train(cfg)
    assert not math.isfinite(result["train_loss"])
    err = capsys.readouterr().err
    assert err.count("the run has diverged") == 1 and "a lower learning rate" in err
