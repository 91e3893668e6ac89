"""The training loop behind `ncalm prepretrain` and `ncalm pretrain`: :func:`train`.

One call trains one stage into ``cfg.run.out_dir`` (``checkpoint.pt``,
``metrics.jsonl``, ``config.json``, the tokenizer for text). Under torchrun
each rank calls it; the data of rank ``r`` is fixed by ``(step, r)`` (see
ncalm.data.sharding), so ``resume=True`` continues exactly where the last
checkpoint left off.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from ncalm.atomic_json import write_json
from ncalm.lm.checkpoint import load_checkpoint, load_state_strict, load_weights, save_checkpoint
from ncalm.data.sharding import Prefetcher, device_batches, make_loader, pins_memory
from ncalm.data.stats import unigram_entropy
from ncalm.data.tokenize import named_tokenizer
from ncalm.data.tokens import FILES, is_bin_spec
import ncalm
from ncalm.lm.model import LlamaLM, ModelConfig, model_config
from ncalm.lm.tokenizer import load_tokenizer, tokenizer_from_dict
from ncalm.locks import exclusive
from ncalm.train import distributed
from ncalm.settings import check_same, quietly, within
from ncalm.train.config import BEST, CHECKPOINT, METRICS, OptimConfig, StageConfig, resolved_precision
from ncalm.train.interrupt import DeferredInterrupt
from ncalm.train.metrics import MetricsLog, read_metrics, val_curve
from ncalm.train.optim import build_optimizer, lr_at
from ncalm.train.sources import build_source
from ncalm.lm.transfer import freeze, select_all, transfer



def _source_and_tokenizer(cfg: StageConfig, d: distributed.Dist, tokenizer, out: Path):
    """The data source and its tokenizer; ``tokenizer`` (the resumed or kept one) is reused, not made anew."""
    text = cfg.data.text
    trains_bpe = cfg.data.kind == "text" and text.tokenizer == "bpe" and text.source is not None \
        and not is_bin_spec(text.source)  # no source: refused by build_source
    if trains_bpe and tokenizer is None and d.world > 1:
        # One rank trains the BPE tokenizer; the others read it, so all share one vocabulary.
        if d.is_main:
            try:
                source, tokenizer = build_source(cfg.data, None, str(d.device), cfg.run.progress)
                tokenizer.save(out)
            except Exception as exc:
                d.share_error(f"{type(exc).__name__}: {exc}")
                raise
            d.share_error(None)
            return source, tokenizer
        error = d.share_error(None)
        if error:
            raise ValueError(f"rank 0 could not make the BPE tokenizer: {error}")
        tokenizer = load_tokenizer(out)
    return build_source(cfg.data, tokenizer, str(d.device), cfg.run.progress and d.is_main)


def _kept_tokenizer(cfg: StageConfig, init_state: dict):
    """The --init checkpoint's tokenizer, which this stage must read its text with under keep_embeddings.

    Copied embedding row i has to mean the same token in both stages; equal
    vocabulary sizes do not say so (two BPE vocabularies of one size from
    different corpora, an NCA alphabet the size of a BPE vocabulary).
    """
    saved = init_state.get("tokenizer")
    if saved is None:
        raise ValueError(f"--keep-embeddings: {cfg.model.init} {why_no_tokenizer(init_state)}, so nothing says "
                         f"which text tokens its embedding rows stand for; leave out --keep-embeddings")
    tokenizer = tokenizer_from_dict(saved)
    # Its name: gpt2 is known by its vocabulary and merges (no GPT-2 files needed), bpe by its size.
    have = tokenizer.name + (f" with {tokenizer.vocab_size} tokens" if tokenizer.name == "bpe" else "")
    text = cfg.data.text
    want = text.tokenizer + (f" with {text.bpe_vocab} tokens" if text.tokenizer == "bpe" else "")
    if text.tokenizer.startswith("hf:"):
        if named_tokenizer(text.tokenizer).to_dict() != tokenizer.to_dict():  # that file's tokenizer is another
            raise ValueError(f"--keep-embeddings reuses the tokenizer of {cfg.model.init} ({have}), but this stage "
                             f"asks for data.text.tokenizer {text.tokenizer}, another one")
    elif have != want:
        raise ValueError(f"--keep-embeddings reuses the tokenizer of {cfg.model.init} ({have}), but this stage "
                         f"asks for {want}: pass --tokenizer {tokenizer.name}"
                         + (f" --bpe-vocab {tokenizer.vocab_size}" if tokenizer.name == "bpe" else ""))
    return tokenizer


# What may differ between a run and its resume: how long it runs, where and how fast, and what it
# records; everything else (model, data, optimizer, precision, world size) must match the checkpoint.
# Precision is compared as resolved (the spec's "precision"): auto is fp32 on the CPU. The data's
# files_digest is for evaluation, which reads no training data: a resume reads the data again and
# compares its token and document counts, as it did before checkpoints recorded the digest (a
# checkpoint without one must still resume).
MAY_CHANGE = ("version", "device", f"data.{FILES}",
              *(f"config.run.{key}" for key in ("precision", "out_dir", "steps", "tokens", "stop_at", "resume",
                                                "progress", "threads", "device", "eval_every", "ckpt_every",
                                                "log_every", "compile", "activation_checkpointing", "tracking")),
              *(f"config.data.{key}" for key in ("workers", "gen_threads", "gen_device", "text.cache")))


def _check_init(cfg: StageConfig, init_state: dict) -> None:
    """Refuse, before any work, a part spec past the model's layers, or an --init checkpoint whose transformer
    does not fit the model asked for.

    Other layer counts or widths would fail only at the copy, naming a missing tensor. Same shapes can
    mean something else too: another head split or rotary base would copy every attention weight
    without error and use it wrongly. More layers are fine where --reinit starts each extra one fresh.
    """
    there = ModelConfig.from_dict(init_state["model_config"])
    # As the model is made below; the vocabulary and context come from the data, and are not copied.
    here = (model_config(cfg.model.size, **cfg.model.overrides) if cfg.model.size
            else replace(there, **cfg.model.overrides))
    with within("model.transfer"):
        for key in ("reinit", "freeze"):
            select_all([], getattr(cfg.model.transfer, key), here.n_layer, key)
    for key in ("n_layer", "d_model", "mlp_hidden", "n_head", "rope_theta"):
        if getattr(there, key) == getattr(here, key):
            continue
        fix = (f"drop {key} from model.overrides" if key in cfg.model.overrides else
               f"leave out --model {cfg.model.size}")  # unset, the model is the checkpoint's shape
        why = "its tensors do not fit this model"
        if key in ("n_head", "rope_theta"):
            why = "the copied attention weights would mean something else"
        elif key == "n_layer" and here.n_layer > there.n_layer:
            extra = range(there.n_layer, here.n_layer)
            new = {n.replace("layers.0.", f"layers.{i}.", 1) for n in init_state["model"] if n.startswith("layers.0.")
                   for i in extra}
            if select_all(sorted(new), cfg.model.transfer.reinit, here.n_layer) == new:
                continue  # the layers it lacks start fresh
            one = len(extra) == 1
            layers = f"{extra[0]}" if one else f"{extra[0]}-{extra[-1]}"
            why = f"it has no layer{'' if one else 's'} {layers}"
            fix = f"pass --reinit block:{layers} to start {'it' if one else 'them'} fresh, or {fix}"
        raise ValueError(f"--init {cfg.model.init}: {key}={getattr(there, key)} there but {getattr(here, key)} "
                         f"here; {why}: {fix} to take the checkpoint's")


def why_no_tokenizer(state: dict) -> str:
    """Why a checkpoint's (or HF folder's) state holds no tokenizer, worded to follow its path in a message."""
    if not {"spec", "train_config"} & state.keys():  # an HF folder says nothing of its data
        return "holds no tokenizer.json"
    kind = _saved_spec(state)["config"]["data"]["kind"]
    # Text without a tokenizer: token files (nanoGPT's train.bin/val.bin, meta.pkl) that came without one.
    return ("was trained on token files without a tokenizer.json" if kind == "text"
            else f"was trained on {kind} data, which has no text tokenizer")


def _saved_spec(state: dict) -> dict:
    """A checkpoint's run spec; one written before the spec existed is rebuilt from what it saved."""
    spec = state["spec"] if "spec" in state else {"config": state["train_config"], "data": state.get("data"),
                                                  "precision": state.get("precision") or "auto",
                                                  "world": state.get("world", 1)}
    # An older config in today's layout: flat (before the spec), or with run.eval_batches (data.val_sequences since).
    if "spec" not in state or "eval_batches" in spec["config"].get("run", {}):
        with quietly():
            spec = {**spec, "config": StageConfig.from_dict(spec["config"]).to_dict()}
    return spec


def _check_resume(cfg: StageConfig, state: dict, spec: dict) -> None:
    saved = _saved_spec(state)
    current = json.loads(json.dumps(spec))
    if saved["precision"] == "auto":  # checkpoints before the resolved value was saved: auto as now
        saved["precision"] = spec["precision"]
    for model in (saved["config"]["model"], current["config"]["model"]):
        model["size"] = model["size"] or (None if model["init"] else "tiny")  # without --init, no --model is tiny
    may_change = MAY_CHANGE
    if cfg.model.size is None:  # no --model asks for nothing: the model comes from the checkpoint
        may_change += ("config.model.size",)
    if not cfg.model.init:  # transfer settings mean something only with an init checkpoint
        may_change += ("config.model.transfer",)
    # The tables of the other data kinds play no part in this run (gen_threads, gen_device: MAY_CHANGE).
    unused = {"nca": ("nca", "pool_size", "epoch_sequences"), "dyck": ("dyck",), "text": ("text",)}
    may_change += tuple(f"config.data.{key}" for kind, keys in unused.items() if kind != cfg.data.kind for key in keys)
    check_same(saved, current, may_change, f"cannot resume: the checkpoint {cfg.run.out_dir}/{CHECKPOINT}")


def compiles(setting: bool | str, device: torch.device) -> bool:
    """Whether ``run.compile`` compiles the model on ``device``: auto means on CUDA with Triton (the
    code generator of torch.compile on GPUs) installed; on the CPU compiling costs more than it saves."""
    if setting == "auto":
        return device.type == "cuda" and importlib.util.find_spec("triton") is not None
    return bool(setting)


def train_step(net, fwd, batches, optimizer: torch.optim.Optimizer, trainable: list, cfg: OptimConfig,
               autocast, device: torch.device, world: int = 1) -> tuple[torch.Tensor, float]:
    """One optimizer step over ``cfg.grad_accum`` micro-batches of ``batches`` through ``fwd`` (``net``,
    perhaps compiled); returns the summed micro-batch losses and the seconds spent waiting for data.

    Nothing here waits for the GPU: the loss stays on the device (the caller reads it, a host sync,
    at log steps only) and the clipped gradient norm is not read.
    """
    wait = 0.0
    loss_sum = torch.zeros((), device=device)
    for micro in range(cfg.grad_accum):
        t = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # no-ops when prefetched
        wait += time.perf_counter() - t
        # Only the last micro-batch all-reduces gradients.
        sync = net.no_sync() if world > 1 and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
        with sync, autocast():
            loss = fwd(x, y)[1]
        (loss / cfg.grad_accum).backward()
        loss_sum += loss.detach()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum, wait


@torch.no_grad()
def evaluate(model: LlamaLM, batches, device, autocast) -> float:
    """Mean loss per scored token over fixed validation batches (the same whatever their sizes)."""
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        scored = int((y != -100).sum())
        with autocast():
            total += model(x.to(device), y.to(device))[1].item() * scored
        count += scored
    model.train()
    return total / count


def train(cfg: StageConfig, resume_hint: str = "rerun with --resume to continue") -> dict:
    """Train one stage; returns final metrics and paths (see the end of this function).

    ``resume_hint`` ends the message printed on Ctrl-C: how the caller's user
    continues (a command without --resume, such as `ncalm experiment`, says its own).
    Raises ValueError (and subclasses such as CheckpointError) for bad
    configuration, data or checkpoints: callers print them as one line.
    """
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    owned = not torch.distributed.is_initialized()
    d = distributed.setup(cfg.run.device)
    with contextlib.ExitStack() as held:
        if owned:  # the process group is left last, after everything _train holds
            held.callback(distributed.teardown)
        return _train(cfg, d, resume_hint, held)


def _train(cfg: StageConfig, d: distributed.Dist, resume_hint: str, held: contextlib.ExitStack) -> dict:
    out = Path(cfg.run.out_dir)
    ckpt_path, best_path = out / CHECKPOINT, out / BEST
    resume_state = None
    if cfg.run.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {ckpt_path}")
        resume_state = load_checkpoint(ckpt_path)
    init_state = load_weights(cfg.model.init) if cfg.model.init and resume_state is None else None
    if init_state is not None:
        _check_init(cfg, init_state)
    kept = _kept_tokenizer(cfg, init_state) if init_state is not None and cfg.model.transfer.keep_embeddings else None
    if d.is_main:
        held.enter_context(exclusive(out))  # also removes the temp files of killed saves
    out.mkdir(parents=True, exist_ok=True)

    resumed = resume_state.get("tokenizer") if resume_state else None
    with within("data"):  # the data's settings checked as it is read, by their full key (data.text.tokenizer)
        source, tokenizer = _source_and_tokenizer(cfg, d, tokenizer_from_dict(resumed) if resumed else kept, out)
    if kept is not None and (tokenizer is None or tokenizer.to_dict() != kept.to_dict()):
        # .bin data brings its own tokenizer (or none), whatever was passed in (StageConfig refuses NCA, Dyck).
        raise ValueError(f"--keep-embeddings: the text {cfg.data.text.source!r} is not tokenized with the tokenizer "
                         f"of {cfg.model.init}, so the copied embedding rows would stand for other tokens")
    precision = resolved_precision(cfg.run.precision, d.device.type)
    bf16 = precision == "bf16"
    # The resolved run spec saved in every checkpoint: the whole tree, the resolved precision, device
    # kind and world size, the data's identity and the package version.
    spec = {"config": cfg.to_dict(), "precision": precision, "device": d.device.type, "world": d.world,
            "data": source.describe(), "version": ncalm.__version__}
    overrides = {"max_seq_len": source.seq_len, **cfg.model.overrides, "vocab_size": source.vocab_size}
    if resume_state is not None:
        mc = ModelConfig.from_dict(resume_state["model_config"])
    elif init_state is not None and cfg.model.size is None:
        mc = replace(ModelConfig.from_dict(init_state["model_config"]), **overrides)
    else:
        mc = model_config(cfg.model.size or "tiny", **overrides)
    torch.manual_seed(cfg.run.seed)
    model = LlamaLM(mc, checkpointing=cfg.run.activation_checkpointing)
    transfer_report = None
    if resume_state is not None:
        _check_resume(cfg, resume_state, spec)
        load_state_strict(model, resume_state["model"], str(ckpt_path))
        with within("model.transfer"):  # a part past the model's layers, named model.transfer.freeze
            freeze(model, cfg.model.transfer.freeze if cfg.model.init else [])
        transfer_report = resume_state.get("transfer")
    elif init_state is not None:
        with within("model.transfer"):
            transfer_report = transfer(model, init_state["model"], cfg.model.transfer, origin=cfg.model.init)
    model.to(d.device)
    optimizer = build_optimizer(model, cfg.optim, fused=d.device.type == "cuda")
    step, elapsed = 0, 0.0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        torch.set_rng_state(resume_state["rng"]["torch"])
        random.setstate(resume_state["rng"]["python"])
        step, elapsed = resume_state["step"], resume_state["elapsed_s"]

    tokens_per_step = cfg.tokens_per_step(d.world)
    total = cfg.total_steps(d.world)
    n, planned = len(getattr(source, "train", ())), total * tokens_per_step
    if d.is_main and step == 0 and cfg.data.kind == "text" and n and planned > n:
        # The budget reads the training text more than once: a small corpus at a large budget
        # silently repeats, where the paper's models see each token once.
        print(f"warning: {planned:,} training tokens read the {n:,} tokens of "
              f"{cfg.data.text.source!r} {planned / n:.1f} times: the corpus repeats", file=sys.stderr)
    if resume_state is not None and step > total:
        key, unit = ("run.tokens", "tokens") if cfg.run.tokens else ("run.steps", "steps")
        raise ValueError(f"{key}: the checkpoint in {out} is at step {step}, past the {total} steps asked for; "
                         f"ask for at least {step * tokens_per_step if cfg.run.tokens else step} {unit} to resume, "
                         "or start over with --force")
    if resume_state is not None and resume_state["total_steps"] != total and d.is_main:
        # Allowed (training a finished run longer is a real use), but the cosine is stretched mid-run.
        print(f"warning: resuming with {total} steps instead of {resume_state['total_steps']}: the learning-rate "
              f"schedule changes from step {step} on", file=sys.stderr)
    autocast = (lambda: torch.autocast(d.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    net = DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None) if d.world > 1 else model
    fwd = net
    if compiles(cfg.run.compile, d.device):
        fwd = torch.compile(net)
        # Compiled code is cached per function, not per model: the stages of an experiment in one process
        # would pile up recompilations of LlamaLM.forward towards dynamo's limit, then fall back to eager.
        held.callback(torch._dynamo.reset)
    trainable = [p for p in model.parameters() if p.requires_grad]

    if d.is_main:
        if resume_state is None:
            # A fresh start (--force) replaces config and metrics now; a stale checkpoint (or best.pt,
            # kept or not this time) beside them would pair the old weights with the new run's files.
            ckpt_path.unlink(missing_ok=True)
            best_path.unlink(missing_ok=True)
        write_json(out / "config.json", cfg.to_dict())
        if tokenizer is not None:
            tokenizer.save(out)
    metrics = MetricsLog(out / METRICS, resume_step=step if resume_state else None, enabled=d.is_main,
                         tracking=cfg.run.tracking, config=cfg.to_dict())
    held.callback(metrics.close)
    val = source.val_batches(cfg.optim.batch_size, cfg.data.val_sequences) if d.is_main else None
    last = {key: (resume_state or {}).get(key) for key in ("train_loss", "val_loss", "best_val_loss")}
    if d.is_main and resume_state is not None and cfg.run.keep_best and best_path.exists():
        # A best.pt past the checkpoint resumed from is not of this history (a fresh start removed its own).
        if load_checkpoint(best_path, skip=("model",)).get("step", step + 1) > step:
            best_path.unlink()
            last["best_val_loss"] = None

    def weights(**more) -> dict:  # what --init reads (best.pt holds only this), and more
        return {"model": model.state_dict(), "model_config": mc.to_dict(), "spec": spec,
                "tokenizer": tokenizer.to_dict() if tokenizer else None, "step": step,
                "tokens": step * tokens_per_step, **more}

    def save() -> None:
        if d.is_main:
            save_checkpoint(ckpt_path, weights(
                optimizer=optimizer.state_dict(), total_steps=total, micro_batch=step * cfg.optim.grad_accum,
                elapsed_s=elapsed, schedule={"kind": "warmup_cosine", "step": step, "total": total},
                rng={"torch": torch.get_rng_state(), "python": random.getstate()}, transfer=transfer_report,
                init=cfg.model.init, **last))
        d.barrier()

    def run_eval() -> None:
        if d.is_main:
            last["val_loss"] = evaluate(model, val, d.device, autocast)
            metrics.write({"step": step, "tokens": step * tokens_per_step, "val_loss": last["val_loss"]})
            best = last["best_val_loss"]
            if cfg.run.keep_best and math.isfinite(last["val_loss"]) and (best is None or last["val_loss"] < best):
                last["best_val_loss"] = last["val_loss"]
                save_checkpoint(best_path, weights(val_loss=last["val_loss"]))

    if step == 0 and cfg.run.eval_every:
        run_eval()
    loader = make_loader(source, cfg.optim.batch_size, d.rank, d.world, step * cfg.optim.grad_accum, cfg.data.workers,
                         pin_memory=pins_memory(d.device))
    batches = device_batches(loader, d.device)  # on CUDA: made ahead, on a side stream
    if isinstance(batches, Prefetcher):
        held.callback(batches.close)  # its thread stops with the run, however the run ends
    bar = tqdm(total=total, initial=step, desc=cfg.data.kind, dynamic_ncols=True, unit="step",
               disable=not (cfg.run.progress and d.is_main))
    t_log, step_log = time.perf_counter(), step
    # Seconds in training steps, and in them waiting for data, since the last log step and in this call:
    # the share of a step the GPU may idle for data is at most data_wait_s / step_s.
    window, timing = {"step_s": 0.0, "data_wait_s": 0.0}, {"step_s": 0.0, "data_wait_s": 0.0}
    stop = min(total, cfg.run.stop_at) if cfg.run.stop_at else total
    model.train()
    diverged = False
    with DeferredInterrupt(enabled=d.world == 1 and cfg.data.workers == 0) as interrupt:
        while step < stop:
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, cfg.optim)
            loss_sum, wait = train_step(net, fwd, batches, optimizer, trainable, cfg.optim, autocast, d.device, d.world)
            step += 1
            # Logs and evaluations follow the run's own steps, not where this invocation
            # stops: a run stopped (--stop-at, Ctrl-C) and resumed records what an
            # uninterrupted one does. Stopping early only adds a checkpoint.
            log = step % cfg.run.log_every == 0 or step == total
            if log:
                # All ranks log at the same steps: the loss of the whole batch, not rank 0's share. Reading it
                # waits for the GPU, so the window's step time below is the time its steps took.
                last["train_loss"] = d.mean(loss_sum).item() / cfg.optim.grad_accum
            spent = time.perf_counter() - t0
            elapsed += spent
            for times in (window, timing):
                times["step_s"] += spent
                times["data_wait_s"] += wait
            if log:
                now = time.perf_counter()
                tps = (step - step_log) * tokens_per_step / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                metrics.write({"step": step, "tokens": step * tokens_per_step, "loss": last["train_loss"],
                               "lr": optimizer.param_groups[0]["lr"], "tokens_per_s": tps, "elapsed_s": elapsed,
                               **window})
                window = {"step_s": 0.0, "data_wait_s": 0.0}
                bar.set_postfix(loss=f"{last['train_loss']:.4f}", tok_s=f"{tps:,.0f}")
                if not math.isfinite(last["train_loss"]) and d.is_main and not diverged:
                    diverged = True  # said once: the run goes on (its metrics show it), but the user should know now
                    print(f"warning: the training loss is {last['train_loss']} at step {step}: the run has diverged; "
                          f"a lower learning rate, gradient clipping or fp32 precision may help", file=sys.stderr)
            bar.update(1)
            if (cfg.run.eval_every and step % cfg.run.eval_every == 0) or step == total:
                run_eval()
            if (cfg.run.ckpt_every and step % cfg.run.ckpt_every == 0) or step == stop or interrupt.requested:
                save()
            if interrupt.requested:
                break
    bar.close()
    # Also a Ctrl-C during the last step, its evaluation or its checkpoint: the caller
    # (e.g. an experiment about to start its next stage) must stop too. The checkpoint
    # is complete either way; resuming continues from it (or finds the run finished).
    if interrupt.requested:
        if d.is_main:
            print(f"interrupted after step {step}: checkpoint {ckpt_path}; {resume_hint}", file=sys.stderr)
        raise KeyboardInterrupt

    records = read_metrics(out / METRICS) if d.is_main else []
    return {
        "out_dir": str(out), "checkpoint": str(ckpt_path), "metrics": str(out / METRICS),
        "step": step, "total_steps": total, "finished": step >= total,
        "tokens": step * tokens_per_step, "tokens_per_step": tokens_per_step,
        "train_loss": last["train_loss"], "val_loss": last["val_loss"], "val_curve": val_curve(records),
        "best_checkpoint": str(best_path) if cfg.run.keep_best and best_path.exists() else None,
        "best_val_loss": last["best_val_loss"],
        "val_unigram_entropy": unigram_entropy(val) if val else None,
        "elapsed_s": elapsed, "tokens_per_s": step * tokens_per_step / elapsed if elapsed else None,
        **timing,  # this call's steps only (elapsed_s also counts the steps before a resume)
        "n_params": mc.n_params(), "model_config": mc.to_dict(),
        "tokenizer": tokenizer.kind if tokenizer else None, "rank": d.rank, "world": d.world,
    }
