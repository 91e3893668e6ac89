"""Greedy decoding speed on the CPU: ncalm's KV-cache sampler against transformers' ``generate``
on the same model (exported with ncalm.lm.hf), the same prompts and the same number of tokens.

    PYTHONPATH=python python benchmarks/bench_decode.py [--presets tiny,small] [--batch 1,16]

Needs transformers. Each model is a random one of the preset's shape with the byte vocabulary,
its weights scaled up so that greedy continuations are decided by clear margins: both
implementations must then produce the same tokens, which the table reports. The two are
timed in alternation (best of --rounds), so load from other processes hits both alike.
Exits 1 when ncalm is slower than transformers on some row.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from ncalm.lm.hf import export_hf
from ncalm.lm.model import LlamaLM, model_config
from ncalm.lm.sampling import generate_ids
from ncalm.lm.tokenizer import ByteTokenizer


def _model(preset: str, context: int) -> LlamaLM:
    torch.manual_seed(0)
    model = LlamaLM(model_config(preset, vocab_size=ByteTokenizer.vocab_size, max_seq_len=context)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0 if p.dim() > 1 else 1.0)
    return model


def _best_tokens_per_s(runs: dict, tokens: int, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: tokens / s for name, s in best.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="tiny,small", help="model shapes (comma-separated presets)")
    p.add_argument("--batch", default="1,16", help="prompts decoded together (comma-separated)")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    import transformers

    torch.set_num_threads(args.threads)
    context, n = args.prompt_len + args.new_tokens, args.new_tokens
    print(f"greedy decoding, {args.prompt_len}-token prompts, {n} new tokens, {args.threads} CPU thread(s), "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"{'model':>8} {'params':>8} {'batch':>5} {'ncalm tok/s':>12} {'HF tok/s':>10} {'ratio':>6}  same tokens")
    slower = False
    for preset in args.presets.split(","):
        model = _model(preset, context)
        with tempfile.TemporaryDirectory() as folder:
            export_hf(model, ByteTokenizer(), folder)
            hf = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        for batch in (int(b) for b in args.batch.split(",")):
            prompts = torch.randint(0, 256, (batch, args.prompt_len), generator=torch.Generator().manual_seed(batch))
            rows = prompts.tolist()

            def ours():
                return generate_ids(model, rows, max_new_tokens=n, batch_size=batch)

            @torch.no_grad()
            def theirs():
                # No EOS: n tokens, as ncalm's generate_ids without eos_id (min_new_tokens would
                # instead forbid the EOS token, and so change the argmax).
                out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=n,
                                  do_sample=False, eos_token_id=None, pad_token_id=ByteTokenizer.eos_id)
                return out[:, args.prompt_len:].tolist()

            same = ours() == theirs()  # also the warm-up of both
            speed = _best_tokens_per_s({"ncalm": ours, "hf": theirs}, batch * n, args.rounds)
            ratio = speed["ncalm"] / speed["hf"]
            slower |= ratio < 1
            print(f"{preset:>8} {model.cfg.n_params() / 1e6:>7.2f}M {batch:>5} {speed['ncalm']:>12,.0f} "
                  f"{speed['hf']:>10,.0f} {ratio:>6.2f}  {'yes' if same else 'NO'}", flush=True)
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
