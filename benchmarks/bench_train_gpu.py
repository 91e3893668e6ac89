"""Training speed on a GPU, measured through the trainer itself: tokens/s, model FLOPs utilisation
(MFU) and the share of step time spent waiting for data, for the small and base shapes (and the
paper's 24 x 2048 with --paper), bf16, sequence length 1024, with and without torch.compile.

    python3 benchmarks/bench_train_gpu.py [--shapes base small] [--paper] [--steps 10] [--budget S] [--json PATH]
    python3 benchmarks/bench_train_gpu.py --cpu-smoke   # the same code path on the CPU: tiny, fp32

Per shape, the largest power-of-two micro-batch whose training step fits in GPU memory (the
trainer's own step, ncalm.train.trainer.train_step, tried at 1, 2, 4, ... until CUDA runs out of
memory), with gradient accumulation up to a fixed --tokens-per-step. Then each configuration is
one `ncalm.train.train(StageConfig)` call of 2 x --steps steps with log_every = --steps: the first
window (compilation, allocator warm-up) is discarded; the second is measured from the metrics
record the trainer writes at its end: tokens/s = its tokens / its step_s, MFU by ncalm.train.mfu
(6 N + 12 L d T FLOPs per token over the card's dense bf16 peak, from the card's name), data wait =
data_wait_s / step_s. NCA data is generated on the GPU through the real data path (band 0.5-1.0,
a fresh in-band rule per sequence, as the gpu-small preset); language data is read from a
memory-mapped train.bin of random GPT-2-sized token ids (vocabulary 50,304) made here.

The run's final checkpoint is not written (no part of a step; for the paper shape with its AdamW
state about 27 GB). --budget stops starting configurations when fewer seconds are left than one
needs; each row is printed as it finishes and the table last. $OUT gets the JSON when set.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ncalm.lm.config import ModelConfig, model_config
from ncalm.lm.model import Attention, LlamaLM, inverse_frequencies, rope
from ncalm.train import StageConfig, train, trainer
from ncalm.train.config import OptimConfig
from ncalm.train.metrics import read_metrics
from ncalm.train.mfu import flops_per_token, mfu, peak_flops
from ncalm.train.optim import build_optimizer

SEQ, SMOKE_SEQ = 1024, 64
TEXT_VOCAB, SMOKE_VOCAB = 50304, 512  # nanoGPT's padded GPT-2 vocabulary: a train.bin without meta.json
# The paper's 1.6B uses the reference code's MLP width 4 x d_model (8,192), not this package's 8/3.
SHAPES = {"small": {}, "base": {}, "paper": {"mlp_hidden": 8192}}
# Seconds a configuration needs at least, to decide under --budget whether to start it.
NEEDS = {("small", False): 20, ("small", True): 60, ("base", False): 30, ("base", True): 80, ("paper", True): 180}


def free_memory() -> None:
    gc.collect()  # train() has reset torch.compile's graphs, which hold on to their model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def largest_micro_batch(mc: ModelConfig, seq: int, cap: int, device: torch.device, autocast) -> int:
    """The largest power of two <= cap whose training step (the trainer's) fits in memory; 0 if none does."""
    with device:  # initialised where it trains: a 1.6B model initialised on the CPU takes seconds
        model = LlamaLM(mc)
    optimizer = build_optimizer(model, OptimConfig(), fused=device.type == "cuda")
    trainable = [p for p in model.parameters() if p.requires_grad]
    best, b = 0, 1
    try:
        while b <= cap:
            x = torch.randint(0, mc.vocab_size, (b, seq), device=device)
            try:
                trainer.train_step(model, model, iter([(x, x)]), optimizer, trainable, OptimConfig(batch_size=b),
                                   autocast, device)
                if device.type == "cuda":
                    torch.cuda.synchronize()
            except torch.OutOfMemoryError:
                break
            finally:
                optimizer.zero_grad(set_to_none=True)
                del x
            best, b = b, b * 2
    finally:
        del model, optimizer, trainable
        free_memory()
    return best


def sdpa_backends(mc: ModelConfig, device: torch.device) -> dict[str, str]:
    """Which SDPA kernels accept the model's own attention call (forward and backward, bf16 autocast):
    'yes', or 'no' with the first line of the reason. torch's default picks the first in its order
    (flash, then cuDNN or memory-efficient, then math) that accepts."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    attn = Attention(mc).to(device)
    x = torch.randn(2, SEQ, mc.d_model, device=device, requires_grad=True)
    cos, sin = rope(inverse_frequencies(mc), 0, SEQ, device)
    out = {}
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH"):
        backend = getattr(SDPBackend, name, None)
        if backend is None:
            out[name] = "no: not in this torch"
            continue
        with warnings.catch_warnings(record=True) as why:  # torch warns why a kernel cannot run, then raises
            warnings.simplefilter("always")
            try:
                with sdpa_kernel([backend]), torch.autocast("cuda", dtype=torch.bfloat16):
                    attn(x, cos, sin).float().sum().backward()
                torch.cuda.synchronize()
                out[name] = "yes"
            except RuntimeError as exc:
                reasons = [str(w.message) for w in why] or [str(exc)]
                out[name] = "no: " + " | ".join(r.strip().splitlines()[0][:150] for r in reasons[:3])
    del attn, x
    free_memory()
    return out


def token_files(root: Path, tokens: int, vocab: int, val_tokens: int) -> str:
    """A nanoGPT-layout folder (train.bin, val.bin: uint16) of random token ids below ``vocab``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rng.integers(0, vocab, tokens, dtype=np.uint16).tofile(root / "train.bin")
    rng.integers(0, vocab, val_tokens, dtype=np.uint16).tofile(root / "val.bin")
    if vocab != TEXT_VOCAB:
        (root / "meta.json").write_text(json.dumps({"vocab_size": vocab}))
    return f"bin:{root}"


def stage(out: Path, shape: str, data: dict, micro: int, accum: int, steps: int, compile_: bool,
          smoke: bool) -> StageConfig:
    return StageConfig.from_dict({
        "model": {"size": shape, "overrides": SHAPES.get(shape, {})},
        "data": data,
        "optim": {"batch_size": micro, "grad_accum": accum, "lr": 3e-4, "warmup_steps": 2},
        "run": {"out_dir": str(out), "steps": 2 * steps, "log_every": steps, "eval_every": 0, "eval_batches": 1,
                "ckpt_every": 0, "device": "cpu" if smoke else "cuda", "precision": "fp32" if smoke else "bf16",
                "compile": compile_, "progress": False}})


def measure(cfg: StageConfig, steps: int, peak: float | None) -> dict:
    """One train() call; the figures of its second log window."""
    start = time.perf_counter()
    result = train(cfg)
    logs = [r for r in read_metrics(result["metrics"]) if "loss" in r]
    window = logs[-1]
    if window["step"] - logs[-2]["step"] != steps:
        raise RuntimeError(f"expected a window of {steps} steps, got records at {[r['step'] for r in logs]}")
    mc, seq = ModelConfig.from_dict(result["model_config"]), cfg.data.seq_len
    tps = steps * result["tokens_per_step"] / window["step_s"]
    return {"tokens_per_s": tps, "mfu": mfu(mc, seq, tps, peak) if peak else None,
            "data_wait_share": window["data_wait_s"] / window["step_s"], "step_s": window["step_s"] / steps,
            "data_wait_s": window["data_wait_s"] / steps, "loss": window["loss"], "n_params": result["n_params"],
            "flops_per_token": flops_per_token(mc, seq),
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            "wall_s": time.perf_counter() - start}


@dataclass
class Bench:
    """What every configuration of one benchmark run shares."""

    smoke: bool
    device: torch.device
    card: str
    peak: float | None
    steps: int  # per window
    seq: int
    vocab: int  # of the language data, and of the micro-batch probe (the larger vocabulary)
    seqs_per_step: int
    budget: float | None
    json_path: Path | None
    began: float = field(default_factory=time.perf_counter)
    report: dict = field(default_factory=dict)

    def autocast(self):
        return contextlib.nullcontext() if self.smoke else torch.autocast("cuda", dtype=torch.bfloat16)

    def save(self) -> None:
        if self.json_path:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.report, indent=1))

    def micro_batch(self, shape: str) -> int:
        """The shape's largest micro-batch (probed once, at the larger vocabulary), and its SDPA kernels."""
        found = self.report["micro_batches"]
        if shape not in found:
            mc = model_config(shape, vocab_size=self.vocab, max_seq_len=self.seq, **SHAPES.get(shape, {}))
            found[shape] = largest_micro_batch(mc, self.seq, min(self.seqs_per_step, 4 if self.smoke else 1 << 30),
                                               self.device, self.autocast)
            if not self.smoke:
                self.report["sdpa"][shape] = sdpa_backends(mc, self.device)
                print(f"{shape}: SDPA kernels that accept the model's attention: {self.report['sdpa'][shape]}")
            print(f"{shape}: largest micro-batch {found[shape]}", flush=True)
        return found[shape]

    def run(self, shape: str, data: dict, compiled: bool, out: Path) -> dict:
        """One configuration's row: measured, skipped (budget) or failed (its error)."""
        row = {"shape": shape, "data": data["kind"], "compile": compiled}
        left = None if self.budget is None else self.budget - (time.perf_counter() - self.began)
        if left is not None and left < NEEDS.get((shape, compiled), 0):
            return {**row, "skipped": f"budget: {left:.0f} s left"}
        steps = min(self.steps, 3) if shape == "paper" else self.steps
        micro = self.micro_batch(shape)
        while micro:
            accum = max(1, self.seqs_per_step // micro)
            row.update(micro_batch=micro, grad_accum=accum)
            try:
                return {**row, **measure(stage(out, shape, data, micro, accum, steps, compiled, self.smoke), steps,
                                         self.peak)}
            except torch.OutOfMemoryError:  # fragmentation in a long run: half the micro-batch, twice the steps
                micro //= 2
            except Exception as exc:  # noqa: BLE001 - one failed configuration must not cost the others
                return {**row, "failed": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}
            finally:
                free_memory()
        return {**row, "failed": "out of memory at micro-batch 1"}

    def table(self) -> None:
        r0 = self.report
        how = "fp32, tiny shape: the code path only, no figures to quote" if self.smoke else "bf16"
        print(f"\n== ncalm training speed on {self.card} ({how}), seq_len {self.seq}, "
              f"{r0['tokens_per_step']:,} tokens per step, {self.steps}-step windows ==")
        print(f"{'shape':<6} {'data':<5} {'compile':<7} {'micro x accum':>13} {'tokens/s':>12} {'MFU':>6} "
              f"{'data wait':>9} {'step s':>7} {'peak GB':>7}")
        for r in r0["rows"]:
            head = f"{r['shape']:<6} {r['data']:<5} {'yes' if r['compile'] else 'no':<7}"
            if "tokens_per_s" not in r:
                print(f"{head} {r.get('skipped') or r.get('failed')}")
                continue
            util = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
            mem = f"{r['peak_memory_gb']:.1f}" if r["peak_memory_gb"] is not None else "n/a"
            print(f"{head} {r['micro_batch']:>6} x {r['grad_accum']:<4} {r['tokens_per_s']:>12,.0f} {util:>6} "
                  f"{r['data_wait_share']:>9.2%} {r['step_s']:>7.3f} {mem:>7}")
        peak = f"{self.peak:.4g} FLOP/s, the card's dense bf16 peak" if self.peak else "the peak (unknown here)"
        print(f"MFU = (6 N + 12 L d T) x tokens/s / {peak}; data wait = host time in the data path / step time "
              f"(a bound on the GPU's idling for data)")
        for shape, kernels in r0["sdpa"].items():
            print(f"SDPA kernels for {shape}: " + ", ".join(f"{k.lower()} {v.split(':')[0]}" for k, v in kernels.items()))


def main() -> int:
    first, rest = __doc__.split("\n\n", 1)
    ap = argparse.ArgumentParser(description=first, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", choices=SHAPES, default=["base", "small"],
                    help="model shapes, in this order (default: base small)")
    ap.add_argument("--paper", action="store_true", help="also the paper shape (24 x 2048, MLP 8192): compiled "
                                                         "only, 3-step windows, 3-4 minutes more")
    ap.add_argument("--steps", type=int, default=10, help="steps per window: one discarded, one measured (default 10)")
    ap.add_argument("--tokens-per-step", type=int, default=131072,
                    help="tokens per optimizer step, reached by gradient accumulation (default 131072: 128 sequences)")
    ap.add_argument("--budget", type=float, help="seconds; configurations that would not fit are skipped")
    ap.add_argument("--json", type=Path, help="write the figures here (default: $OUT/bench_train_gpu.json when $OUT "
                                              "is set)")
    ap.add_argument("--cpu-smoke", action="store_true", help="the code path on the CPU: tiny shape, fp32, 2-step "
                                                             "windows, no compile (automatic without CUDA)")
    args = ap.parse_args()
    smoke = args.cpu_smoke or not torch.cuda.is_available()
    card = "the CPU" if smoke else torch.cuda.get_device_name()
    seq = SMOKE_SEQ if smoke else SEQ
    b = Bench(smoke=smoke, device=torch.device("cpu" if smoke else "cuda"), card=card,
              peak=None if smoke else peak_flops(card), steps=2 if smoke else args.steps, seq=seq,
              vocab=SMOKE_VOCAB if smoke else TEXT_VOCAB,
              seqs_per_step=8 if smoke else max(1, args.tokens_per_step // seq), budget=args.budget,
              json_path=args.json or (Path(os.environ["OUT"]) / "bench_train_gpu.json" if os.environ.get("OUT") else None))
    b.report = {"device": card, "smoke": smoke, "torch": torch.__version__, "seq_len": seq,
                "tokens_per_step": b.seqs_per_step * seq, "steps_per_window": b.steps, "peak_flops": b.peak,
                "micro_batches": {}, "sdpa": {}, "rows": []}
    # (shape, data, compiled), the most telling first in case the budget runs out: by default the base
    # shape, the yardstick, then small; the paper shape compiled only (eager costs minutes more).
    shapes = list(dict.fromkeys(args.shapes + (["paper"] if args.paper else [])))
    plan = [(shape, kind, compiled) for shape in shapes
            for kind, compiled in [("nca", True), ("text", True)] + ([] if shape == "paper" else [("nca", False)])]
    if smoke:
        plan = [("tiny", "nca", False), ("tiny", "text", False)]
    nca = ({"kind": "nca", "seq_len": seq, "nca": {"grid": 8, "colors": 4, "band": None}} if smoke else
           {"kind": "nca", "seq_len": seq})  # the paper's NCA settings, band 0.5-1.0, generated on the GPU

    real_save = trainer.save_checkpoint
    trainer.save_checkpoint = lambda *a, **k: None  # see the module's docstring
    try:
        with tempfile.TemporaryDirectory(prefix="bench_train_gpu") as tmp:
            windows = 2 * b.steps * b.seqs_per_step + 8  # every window read once: no epoch of the order repeats
            text = {"kind": "text", "seq_len": seq,
                    "text": {"source": token_files(Path(tmp) / "tokens", windows * seq + 1, b.vocab, 64 * (seq + 1))}}
            for shape, kind, compiled in plan:
                row = b.run(shape, nca if kind == "nca" else text, compiled, Path(tmp) / f"{shape}-{kind}-{compiled}")
                b.report["rows"].append(row)
                b.save()
                print("row: " + json.dumps(row), flush=True)
    finally:
        trainer.save_checkpoint = real_save
    b.table()
    b.save()
    return 1 if any("failed" in r for r in b.report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
