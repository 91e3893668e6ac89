"""The training loop behind `ncalm prepretrain` and `ncalm pretrain`: :func:`train`.

One call trains one stage into ``cfg.out_dir`` (``checkpoint.pt``,
``metrics.jsonl``, ``config.json``, the tokenizer for text). Under torchrun
each rank calls it; the data of rank ``r`` is fixed by ``(step, r)`` (see
ncalm.data.sharding), so ``resume=True`` continues exactly where the last
checkpoint left off.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from ncalm.checkpoint import load_checkpoint, load_state_strict, load_weights, save_checkpoint
from ncalm.data import make_loader
from ncalm.data.stats import unigram_entropy
from ncalm.data.tokens import is_bin_spec
from ncalm.model import LlamaLM, ModelConfig, model_config
from ncalm.tokenizer import load_tokenizer, tokenizer_from_dict
from ncalm.train import distributed
from ncalm.train.config import TrainConfig, TransferConfig
from ncalm.train.interrupt import DeferredInterrupt
from ncalm.train.metrics import MetricsLog, progress_bar, read_metrics, val_curve
from ncalm.train.optim import build_optimizer, lr_at
from ncalm.train.sources import build_source
from ncalm.transfer import freeze, transfer

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


def _source_and_tokenizer(cfg: TrainConfig, d: distributed.Dist, tokenizer, out: Path):
    """The data source and its tokenizer; ``tokenizer`` (the resumed or kept one) is reused, not made anew."""
    trains_bpe = cfg.data.kind == "text" and cfg.data.tokenizer == "bpe" and not is_bin_spec(cfg.data.text)
    if trains_bpe and tokenizer is None and d.world > 1:
        # One rank trains the BPE tokenizer; the others read it, so all share one vocabulary.
        if d.is_main:
            try:
                source, tokenizer = build_source(cfg.data, None, str(d.device))
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
    return build_source(cfg.data, tokenizer, str(d.device))


def _kept_tokenizer(cfg: TrainConfig, init_state: dict):
    """The --init checkpoint's tokenizer, which this stage must read its text with under keep_embeddings.

    Copied embedding row i has to mean the same token in both stages; equal
    vocabulary sizes do not say so (two BPE vocabularies of one size from
    different corpora, an NCA alphabet the size of a BPE vocabulary).
    """
    saved = init_state.get("tokenizer")
    if saved is None:
        kind = init_state.get("train_config", {}).get("data", {}).get("kind", "non-text")
        raise ValueError(f"--keep-embeddings: {cfg.init} was trained on {kind} data, which has no text tokenizer, "
                         f"so its embedding rows are no text tokens; leave out --keep-embeddings")
    tokenizer = tokenizer_from_dict(saved)
    have = tokenizer.kind + (f" with {tokenizer.vocab_size} tokens" if tokenizer.kind == "bpe" else "")
    want = cfg.data.tokenizer + (f" with {cfg.data.bpe_vocab} tokens" if cfg.data.tokenizer == "bpe" else "")
    if have != want:
        raise ValueError(f"--keep-embeddings reuses the tokenizer of {cfg.init} ({have}), but this stage asks for "
                         f"{want}: pass --tokenizer {tokenizer.kind}"
                         + (f" --bpe-vocab {tokenizer.vocab_size}" if tokenizer.kind == "bpe" else ""))
    return tokenizer


def _model_config(cfg: TrainConfig, source, resume_state, init_state) -> ModelConfig:
    if resume_state is not None:
        return ModelConfig.from_dict(resume_state["model_config"])
    overrides = {"max_seq_len": source.seq_len, **cfg.model_overrides, "vocab_size": source.vocab_size}
    if init_state is not None and cfg.model is None:
        return replace(ModelConfig.from_dict(init_state["model_config"]), **overrides)
    return model_config(cfg.model or "tiny", **overrides)


def _check_same_meaning(source: dict, target: ModelConfig, origin: str) -> None:
    # Same shapes, other meaning: another head split or rotary base would copy every
    # attention weight without error and use it wrongly.
    for key in ("n_head", "rope_theta"):
        if source[key] != getattr(target, key):
            raise ValueError(f"--init {origin}: {key}={source[key]} there but {getattr(target, key)} here; "
                             f"the copied attention weights would mean something else")


def _setting(d: dict, key: str):
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _fixed_settings(cfg: dict) -> dict:
    """Settings that a resumed run takes from its checkpoint (model, tokenizer, transfer) or
    that would make the rest of the run compute something else; by dotted name."""
    out = {key: _setting(cfg, key) for key in ("model", "model_overrides", "seed", "data.tokenizer")}
    # Without --init, no --model meant tiny: an explicit tiny asks for the same.
    out["model"] = out["model"] or (None if cfg.get("init") else "tiny")
    out["data.bpe_vocab"] = _setting(cfg, "data.bpe_vocab") if out["data.tokenizer"] == "bpe" else None
    # Transfer settings only mean something with an --init checkpoint.
    transfer = cfg["transfer"] if cfg.get("init") else asdict(TransferConfig())
    out.update({f"transfer.{k}": transfer.get(k) for k in ("reinit", "keep_embeddings")})
    return out


def _check_resume(cfg: TrainConfig, state: dict, d: distributed.Dist, source, precision: str) -> None:
    saved = state["train_config"]
    then, now = _fixed_settings(saved), _fixed_settings(cfg.to_dict())
    # No --model asks for nothing: the model comes from the checkpoint.
    asked = [k for k in now if not (k == "model" and cfg.model is None)]
    changed = [f"{k}={now[k]!r} (was {then[k]!r})" for k in asked if now[k] != then.get(k)]
    # Compared as resolved: precision auto is bf16 on CUDA and fp32 on the CPU. Checkpoints
    # from before the resolved value was saved hold only the setting; auto there is taken as now.
    precision_then = state.get("precision") or (precision if saved["precision"] == "auto" else saved["precision"])
    if precision != precision_then:
        changed.append(f"precision {precision} (was {precision_then})")
    if changed:
        raise ValueError(f"cannot resume: {', '.join(changed)}; a resumed run keeps the settings of the "
                         f"interrupted one: pass those, or use a new --out")
    for key in ("batch_size", "grad_accum"):
        if saved[key] != getattr(cfg, key):
            raise ValueError(f"cannot resume: {key}={getattr(cfg, key)} but the checkpoint used {saved[key]}")
    if state["world"] != d.world:
        raise ValueError(f"cannot resume: {d.world} processes but the checkpoint was written by {state['world']}")
    if state["data"] != source.describe():
        raise ValueError("cannot resume: the data configuration differs from the checkpoint's")
    # The optimizer state holds one entry per trainable tensor: another frozen
    # set would load moments into the wrong tensors.
    changed = [f"{k}={v!r} (was {saved['optim'][k]!r})" for k, v in asdict(cfg.optim).items()
               if saved["optim"].get(k) != v]
    if changed:
        raise ValueError(f"cannot resume: the optimizer settings differ from the checkpoint's: {', '.join(changed)}; "
                         f"use a new --out")
    frozen_then = saved["transfer"]["freeze"] if saved.get("init") else []
    frozen_now = cfg.transfer.freeze if cfg.init else []
    if frozen_now != frozen_then:
        raise ValueError(f"cannot resume: frozen parts {frozen_now} but the checkpoint trained with {frozen_then} "
                         f"frozen; pass the same --init and --freeze as the interrupted run")


@torch.no_grad()
def evaluate(model: LlamaLM, batches, device, autocast) -> float:
    """Mean loss over fixed validation batches."""
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast():
            total += model(x.to(device), y.to(device))[1].item()
    model.train()
    return total / len(batches)


def train(cfg: TrainConfig, resume_hint: str = "rerun with --resume to continue") -> dict:
    """Train one stage; returns final metrics and paths (see the end of this function).

    ``resume_hint`` ends the message printed on Ctrl-C: how the caller's user
    continues (a command without --resume, such as `ncalm experiment`, says its own).
    Raises ValueError (and subclasses such as CheckpointError) for bad
    configuration, data or checkpoints: callers print them as one line.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    owned = not torch.distributed.is_initialized()
    d = distributed.setup(cfg.device)
    try:
        return _train(cfg, d, resume_hint)
    finally:
        if owned:
            distributed.teardown()


def _train(cfg: TrainConfig, d: distributed.Dist, resume_hint: str) -> dict:
    out = Path(cfg.out_dir)
    ckpt_path = out / CHECKPOINT
    resume_state = None
    if cfg.resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {ckpt_path}")
        resume_state = load_checkpoint(ckpt_path)
    init_state = load_weights(cfg.init) if cfg.init and resume_state is None else None
    kept = _kept_tokenizer(cfg, init_state) if init_state is not None and cfg.transfer.keep_embeddings else None
    out.mkdir(parents=True, exist_ok=True)

    resumed = resume_state.get("tokenizer") if resume_state else None
    source, tokenizer = _source_and_tokenizer(cfg, d, tokenizer_from_dict(resumed) if resumed else kept, out)
    if kept is not None and (tokenizer is None or tokenizer.to_dict() != kept.to_dict()):
        # NCA and Dyck data have no tokenizer; .bin data brings its own (or none), whatever was passed in.
        what = f"the text {cfg.data.text!r}" if cfg.data.kind == "text" else f"{cfg.data.kind} data"
        raise ValueError(f"--keep-embeddings: {what} is not tokenized with the tokenizer of {cfg.init}, "
                         f"so the copied embedding rows would stand for other tokens")
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and d.device.type == "cuda")
    precision = "bf16" if bf16 else "fp32"
    mc = _model_config(cfg, source, resume_state, init_state)
    torch.manual_seed(cfg.seed)
    model = LlamaLM(mc)
    transfer_report = None
    if resume_state is not None:
        _check_resume(cfg, resume_state, d, source, precision)
        load_state_strict(model, resume_state["model"], str(ckpt_path))
        freeze(model, cfg.transfer.freeze if cfg.init else [])
        transfer_report = resume_state.get("transfer")
    elif init_state is not None:
        _check_same_meaning(init_state["model_config"], mc, cfg.init)
        transfer_report = transfer(model, init_state["model"], cfg.transfer, origin=cfg.init)
    model.to(d.device)
    optimizer = build_optimizer(model, cfg.optim, fused=d.device.type == "cuda")
    step, elapsed = 0, 0.0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        torch.set_rng_state(resume_state["rng"]["torch"])
        random.setstate(resume_state["rng"]["python"])
        step, elapsed = resume_state["step"], resume_state["elapsed_s"]

    tokens_per_step = cfg.batch_size * cfg.grad_accum * d.world * source.seq_len
    total = cfg.total_steps(d.world, source.seq_len)
    if resume_state is not None and resume_state["total_steps"] != total and d.is_main:
        # Allowed (training a finished run longer is a real use), but the cosine is stretched mid-run.
        print(f"warning: resuming with {total} steps instead of {resume_state['total_steps']}: the learning-rate "
              f"schedule changes from step {step} on", file=sys.stderr)
    autocast = (lambda: torch.autocast(d.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    net = DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None) if d.world > 1 else model
    fwd = torch.compile(net) if cfg.compile else net
    trainable = [p for p in model.parameters() if p.requires_grad]

    if d.is_main:
        if resume_state is None:
            # A fresh start (--force) replaces config and metrics now; a stale checkpoint beside them
            # would pair the old weights with the new run's files until the first save.
            ckpt_path.unlink(missing_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        if tokenizer is not None:
            tokenizer.save(out)
    metrics = MetricsLog(out / METRICS, resume_step=step if resume_state else None, enabled=d.is_main)
    val = source.val_batches(cfg.batch_size, cfg.eval_batches) if d.is_main else None
    last = {key: (resume_state or {}).get(key) for key in ("train_loss", "val_loss")}

    def save() -> None:
        if d.is_main:
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "model_config": mc.to_dict(), "train_config": cfg.to_dict(), "data": source.describe(),
                "tokenizer": tokenizer.to_dict() if tokenizer else None,
                "step": step, "total_steps": total, "tokens": step * tokens_per_step,
                "micro_batch": step * cfg.grad_accum, "world": d.world, "elapsed_s": elapsed,
                "schedule": {"kind": "warmup_cosine", "step": step, "total": total},
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
                "transfer": transfer_report, "init": cfg.init, "precision": precision, **last})
        d.barrier()

    def run_eval() -> None:
        if d.is_main:
            last["val_loss"] = evaluate(model, val, d.device, autocast)
            metrics.write({"step": step, "tokens": step * tokens_per_step, "val_loss": last["val_loss"]})

    if step == 0 and cfg.eval_every:
        run_eval()
    loader = make_loader(source, cfg.batch_size, d.rank, d.world, step * cfg.grad_accum, cfg.data.workers)
    bar = progress_bar(total, step, cfg.progress and d.is_main, desc=cfg.data.kind)
    t_log, step_log = time.perf_counter(), step
    stop = min(total, cfg.stop_at) if cfg.stop_at else total
    model.train()
    diverged = False
    with DeferredInterrupt(enabled=d.world == 1 and cfg.data.workers == 0) as interrupt:
        while step < stop:
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total, cfg.optim)
            loss_sum = torch.zeros((), device=d.device)
            for micro in range(cfg.grad_accum):
                x, y = next(loader)
                x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
                # Only the last micro-batch all-reduces gradients.
                sync = net.no_sync() if d.world > 1 and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
                with sync, autocast():
                    loss = fwd(x, y)[1]
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            elapsed += time.perf_counter() - t0

            # Logs and evaluations follow the run's own steps, not where this invocation
            # stops: a run stopped (--stop-at, Ctrl-C) and resumed records what an
            # uninterrupted one does. Stopping early only adds a checkpoint.
            if step % cfg.log_every == 0 or step == total:
                now = time.perf_counter()
                # All ranks log at the same steps: the loss of the whole batch, not rank 0's share.
                last["train_loss"] = d.mean(loss_sum).item() / cfg.grad_accum
                tps = (step - step_log) * tokens_per_step / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                metrics.write({"step": step, "tokens": step * tokens_per_step, "loss": last["train_loss"],
                               "lr": optimizer.param_groups[0]["lr"], "tokens_per_s": tps, "elapsed_s": elapsed})
                if bar is not None:
                    bar.set_postfix(loss=f"{last['train_loss']:.4f}", tok_s=f"{tps:,.0f}")
                if not math.isfinite(last["train_loss"]) and d.is_main and not diverged:
                    diverged = True  # said once: the run goes on (its metrics show it), but the user should know now
                    print(f"warning: the training loss is {last['train_loss']} at step {step}: the run has diverged; "
                          f"a lower learning rate, gradient clipping or fp32 precision may help", file=sys.stderr)
            if bar is not None:
                bar.update(1)
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == total:
                run_eval()
            if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == stop or interrupt.requested:
                save()
            if interrupt.requested:
                break
    if bar is not None:
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
        "val_unigram_entropy": unigram_entropy(val) if val else None,
        "elapsed_s": elapsed, "tokens_per_s": step * tokens_per_step / elapsed if elapsed else None,
        "n_params": model.num_parameters(), "model_config": mc.to_dict(),
        "tokenizer": tokenizer.kind if tokenizer else None, "rank": d.rank, "world": d.world,
    }
