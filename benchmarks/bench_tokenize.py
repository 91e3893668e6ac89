"""GPT-2 tokenization speed: `ncalm tokenize` (all cores) against single-thread tiktoken
``encode_ordinary`` on the same text, timed in the same run; and, on one thread each, ncalm's
compiled encoder (ncalm.data.bpe, what each `ncalm tokenize` worker calls) against tiktoken.

    PYTHONPATH=python python benchmarks/bench_tokenize.py [--mb 100] [--gpt2-files DIR] [--text FILE]

The text is --text (default: /work/shared/data/tinystories's files when present) repeated to
--mb megabytes (env NCALM_BENCH_TOKENIZE_MB overrides, for a quick run) and written to one file
per 4 MB. GPT-2's vocab.bpe and encoder.json come from --gpt2-files or $NCALM_GPT2_FILES.
Both sides encode all of it; ncalm's time is the whole command (reading, splitting, workers,
writing train.bin/val.bin), tiktoken's only the encode call over the text already in memory.
Also checks that ncalm's ids are tiktoken's. Exits 1 below the --target ratio (default 1.6) of
`ncalm tokenize` to single-thread tiktoken, or when any ids differ.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ncalm.data.bpe import GPT2Encoder
from ncalm.data.tokenize import (GPT2_FILES_ENV, GPT2_HASHES, TokenizeConfig, data_gym_encoding, documents, gpt2_dir,
                                 tokenize)

SHARED = Path("/work/shared/data")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=float(os.environ.get("NCALM_BENCH_TOKENIZE_MB", 100)))
    p.add_argument("--gpt2-files", default=os.environ.get(GPT2_FILES_ENV) or str(SHARED / "gpt2"))
    p.add_argument("--text", default=",".join(map(str, sorted((SHARED / "tinystories").glob("*.txt")))))
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--target", type=float, default=1.6)
    args = p.parse_args()
    if not args.text:
        sys.exit("no text: pass --text FILE")
    seed = "".join(Path(f).read_text(encoding="utf-8") for f in args.text.split(","))
    text = seed * max(1, round(args.mb * 1e6 / len(seed.encode())))
    enc = data_gym_encoding(gpt2_dir(args.gpt2_files), hashes=GPT2_HASHES)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp, "corpus")
        corpus.mkdir()
        step = 4_000_000
        for i in range(0, len(text), step):
            (corpus / f"part{i // step:05d}.txt").write_text(text[i:i + step], encoding="utf-8")
        n_bytes = len(text.encode())
        t0 = time.perf_counter()
        ref = enc.encode_ordinary(text)
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        enc.encode_to_numpy(text, allowed_special=set(), disallowed_special=())
        t_numpy = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = GPT2Encoder(enc).encode(text)  # what each ncalm worker calls; its setup and an empty cache included
        t_ours = time.perf_counter() - t0
        same_single = np.array_equal(ours, ref)
        del ours, ref
        cfg = TokenizeConfig(source=str(corpus), out=str(Path(tmp, "tok")), gpt2_files=args.gpt2_files,
                             workers=args.workers, progress=False)
        t0 = time.perf_counter()
        tokenize(cfg, echo=lambda s: None)
        t_ncalm = time.perf_counter() - t0
        # Exactness, untimed: each split's file against tiktoken on the same documents.
        same = all(np.array_equal(np.fromfile(Path(tmp, "tok", f"{split}.bin"), np.uint16),
                                  [i for d in docs if d[0] == split for i in enc.encode_ordinary(d[1]) + [enc.eot_token]])
                   for docs in [list(documents(cfg))] for split in ("train", "val"))
    ratio = t_single / t_ncalm
    print(f"{n_bytes / 1e6:.1f} MB, {os.cpu_count()} cores")
    print(f"  tiktoken encode_ordinary, 1 thread  {t_single:7.2f} s  {n_bytes / t_single / 2**20:6.2f} MiB/s")
    print(f"  tiktoken encode_to_numpy, 1 thread  {t_numpy:7.2f} s  {n_bytes / t_numpy / 2**20:6.2f} MiB/s")
    print(f"  ncalm GPT2Encoder, 1 thread         {t_ours:7.2f} s  {n_bytes / t_ours / 2**20:6.2f} MiB/s  "
          f"({t_single / t_ours:.2f}x tiktoken encode_ordinary; same ids: {same_single})")
    print(f"  ncalm tokenize, {cfg.workers or os.cpu_count()} workers          {t_ncalm:7.2f} s  "
          f"{n_bytes / t_ncalm / 2**20:6.2f} MiB/s")
    print(f"  speedup {ratio:.2f}x (target {args.target}x); ids identical to tiktoken's: {same}")
    return 0 if ratio >= args.target and same and same_single else 1


if __name__ == "__main__":
    sys.exit(main())
