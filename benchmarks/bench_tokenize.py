"""GPT-2 tokenization speed: `ncalm tokenize` (all cores) against single-thread tiktoken
``encode_ordinary`` on the same text, timed in the same run; and, on one thread each, ncalm's
compiled encoder (ncalm.data.bpe, what each `ncalm tokenize` worker calls) against tiktoken.

    PYTHONPATH=python python benchmarks/bench_tokenize.py [--mb 100] [--gpt2-files DIR] [--text FILE]

The text is the first --mb megabytes (env NCALM_BENCH_TOKENIZE_MB overrides, for a quick run; all of it
where there is less: the first line printed says how much) of
--text, by default /work/shared/data's TinyStories and TinyShakespeare where present, then this
Python's standard-library sources (ncalm's stdlib corpus): prose and code, never repeated. The
compiled encoder caches each distinct piece's ids, so repeated text would time its cache, not a
corpus; and a few MB would time the command's fixed costs. It is written to one file per 4 MB.
GPT-2's vocab.bpe and encoder.json come from --gpt2-files or $NCALM_GPT2_FILES.
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

from ncalm.data.bpe import GPT2Encoder, code_point_classes
from ncalm.data.corpus import stdlib_files
from ncalm.data.tokenize import (GPT2_FILES_ENV, GPT2_HASHES, TokenizeConfig, data_gym_encoding, documents, gpt2_dir,
                                 safe_cuts, tokenize)

SHARED = Path("/work/shared/data")


def default_text(n_bytes: float) -> str:
    """The shared TinyStories and TinyShakespeare, then standard-library sources, until ``n_bytes``."""
    files = [*sorted((SHARED / "tinystories").glob("*.txt")), *sorted((SHARED / "tinyshakespeare").glob("*.txt")),
             *(path for _, path in stdlib_files())]
    parts, size = [], 0
    for path in files:
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:  # a few stdlib files are not UTF-8 on purpose
            continue
        size += len(parts[-1].encode())
        if size >= n_bytes:
            break
    return "".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=float(os.environ.get("NCALM_BENCH_TOKENIZE_MB", 100)))
    p.add_argument("--gpt2-files", default=os.environ.get(GPT2_FILES_ENV) or str(SHARED / "gpt2"))
    p.add_argument("--text", default="")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--target", type=float, default=1.6)
    args = p.parse_args()
    text = "".join(Path(f).read_text(encoding="utf-8") for f in args.text.split(",")) if args.text else \
        default_text(args.mb * 1e6)
    text = text.encode()[:int(args.mb * 1e6)].decode(errors="ignore")  # distinct text only (see above)
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
        # The command's work items: text with a code point Python's tables do not know goes to tiktoken, one
        # item at a time there too, not the whole text.
        items = safe_cuts(text, TokenizeConfig.chunk_bytes)
        t0 = time.perf_counter()
        encoder = GPT2Encoder(enc)  # what each ncalm worker calls; its setup and an empty cache included
        ours = np.concatenate([encoder.encode(item) for item in items])
        t_ours = time.perf_counter() - t0
        same_single = np.array_equal(ours, ref)
        del ours, ref
        cfg = TokenizeConfig(source=str(corpus), out=str(Path(tmp, "tok")), gpt2_files=args.gpt2_files,
                             workers=args.workers, progress=False)
        t0 = time.perf_counter()
        code_point_classes.cache_clear()  # the command builds its encoder's table itself, as a fresh process does
        tokenize(cfg, echo=lambda s: None)
        t_ncalm = time.perf_counter() - t0
        # Exactness, untimed: each split's file against tiktoken on the same documents.
        same = all(np.array_equal(np.fromfile(Path(tmp, "tok", f"{split}.bin"), np.uint16),
                                  [i for d in docs if d[0] == split for i in enc.encode_ordinary(d[1]) + [enc.eot_token]])
                   for docs in [list(documents(cfg))] for split in ("train", "val"))
    ratio = t_single / t_ncalm
    print(f"{n_bytes / 1e6:.1f} MB of distinct text (no repeats), {os.cpu_count()} cores")
    print(f"  tiktoken encode_ordinary, 1 thread  {t_single:7.2f} s  {n_bytes / t_single / 2**20:6.2f} MiB/s")
    print(f"  tiktoken encode_to_numpy, 1 thread  {t_numpy:7.2f} s  {n_bytes / t_numpy / 2**20:6.2f} MiB/s")
    print(f"  ncalm GPT2Encoder, 1 thread, {len(items)} items {t_ours:7.2f} s  {n_bytes / t_ours / 2**20:6.2f} MiB/s  "
          f"({t_single / t_ours:.2f}x tiktoken encode_ordinary; same ids: {same_single})")
    print(f"  ncalm tokenize, {cfg.workers or os.cpu_count()} workers          {t_ncalm:7.2f} s  "
          f"{n_bytes / t_ncalm / 2**20:6.2f} MiB/s")
    print(f"  speedup {ratio:.2f}x (target {args.target}x); ids identical to tiktoken's: {same}")
    return 0 if ratio >= args.target and same and same_single else 1


if __name__ == "__main__":
    sys.exit(main())
