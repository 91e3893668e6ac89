"""Write filtered NCA token sequences to disk as uint16 shards plus a manifest.

Each shard (nca_000000.bin, ...) is a flat little-endian uint16 array, as
nanoGPT's train.bin: whole sequences of seq_len + 1 tokens back to back, so
np.memmap(path, np.uint16).reshape(-1, seq_len + 1) recovers them. A shard is
written under a .tmp name and renamed when complete; manifest.json (written
atomically after every shard) lists the completed shards, the config, seed,
counts and the histogram of the accepted rules' complexity scores. An
interrupted run keeps its completed shards: rerun with --resume.

The GPU backend (--device cuda, or auto when this build has CUDA kernels
and a GPU is usable) writes exactly the CPU backend's tokens.

examples:
  ncalm generate --tokens 100M --out nca/
  ncalm generate --sequences 5000 --band 0.3,0.4 --seed 1 --out nca-code/
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ncalm.atomic_json import read_json, write_json
from ncalm.devices import check_device_name
from ncalm.cli.options import add_nca_arguments, nca_config
from ncalm.locks import exclusive
from ncalm.memory import check_fits
from ncalm.nca.cpu import MAX_SEQ_ID, _seed
from ncalm.settings import parse_count

MANIFEST = "manifest.json"
HIST_BINS = np.linspace(0.0, 2.0, 81)  # gzip ratios lie in [0, ~1.1]; 0.025-wide bins


def add_arguments(p: argparse.ArgumentParser) -> None:
    size = p.add_mutually_exclusive_group()
    size.add_argument("--tokens", type=parse_count, default=None,
                      help="tokens to write (rounded up to whole sequences of seq_len + 1); e.g. 100M. "
                           "Default: 10M")
    size.add_argument("--sequences", type=parse_count, default=None, help="sequences to write instead of --tokens")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="stream seed; sequence i is a pure function of (config, seed, i)")
    p.add_argument("--start", type=int, default=0, help="id of the first sequence (to extend or shard a stream)")
    p.add_argument("--shard-tokens", type=parse_count, default=parse_count("100M"), help="tokens per shard file")
    p.add_argument("--chunk", type=int, default=2048, help="sequences generated per call (memory ~ chunk * seq_len * 2 B)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores); on a GPU, for gzip scoring")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:N, or auto (the GPU backend when usable, else cpu); same tokens either way")
    p.add_argument("--force", action="store_true", help="overwrite an existing output directory's shards")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_nca_arguments(p)


def _prepare_dir(out: Path, plan: dict, force: bool, resume: bool) -> dict:
    """The manifest to continue from: fresh, or the interrupted run's."""
    manifest_path = out / MANIFEST
    existing = sorted(out.glob("nca_*.bin*")) if out.exists() else []
    if resume:
        if not manifest_path.exists():
            raise ValueError(f"--resume: no {MANIFEST} in {out}; nothing to resume")
        manifest = read_json(manifest_path, ("config", "seed", "start", "sequences", "shard_sequences", "shards",
                                             "histogram", "candidates_scored"), "manifest of `ncalm generate`")
        for key in ("config", "seed", "start", "sequences", "shard_sequences"):
            if manifest[key] != plan[key]:
                raise ValueError(f"--resume: {key} differs from the interrupted run's ({manifest[key]!r} vs {plan[key]!r})")
        return manifest  # a shard's .tmp left by the interruption is overwritten when it is written
    if existing or manifest_path.exists():
        if not force:
            raise FileExistsError(f"{out} already holds NCA shards; pass --force to overwrite or --resume to continue")
        for f in existing + [manifest_path]:
            f.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {**plan, "complete": False, "shards": [],
                "histogram": {"edges": HIST_BINS.tolist(), "counts": [0] * (len(HIST_BINS) - 1)},
                "candidates_scored": 0}
    # Written before the first shard, so that a run stopped inside it can be resumed.
    write_json(manifest_path, manifest)
    return manifest


def _write_shard(path: Path, first: int, n: int, tokens, chunk: int) -> None:
    """Sequences first..first+n-1, from ``tokens(ids)`` ``chunk`` at a time, to ``path`` via a
    synced temporary file renamed when complete: a shard on disk is always whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for lo in range(0, n, chunk):
            ids = np.arange(first + lo, first + min(lo + chunk, n), dtype=np.uint64)
            tokens(ids).astype("<u2", copy=False).tofile(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def resolve_device(name: str, cfg) -> str:
    """'cpu' or the CUDA device to generate on; auto falls back to the CPU where the GPU backend cannot serve."""
    from ncalm import _core

    if name == "cpu":
        return "cpu"
    check_device_name(name)
    count = _core.cuda_device_count()[0] if getattr(_core, "built_with_cuda", False) else 0
    if count == 0:
        if name == "auto":
            return "cpu"
        from ncalm.nca.cuda import cuda_status

        raise ValueError(f"--device {name}: {cuda_status(cpu='--device cpu')[1]}")
    if name == "auto":
        import torch

        usable = torch.cuda.is_available() and not _core.cuda_unsupported(cfg.core)
        return "cuda" if usable else "cpu"
    if ":" in name and int(name.split(":")[1]) >= count:
        raise ValueError(f"--device {name}: this machine has {count} CUDA device(s)")
    return name


def backend(cfg, seed: int, threads: int, chunk: int, device: str):
    """(find, write) on the chosen device: find(ids) -> (rules, ratios); write(ids, rules, out) fills out."""
    import ncalm

    if device == "cpu":
        def write(ids, rules, out):
            ncalm.sequence_tokens(cfg, seed, ids, rule_ids=rules, threads=threads, out=out)

        return (lambda ids: ncalm.find_rules(cfg, seed, ids, threads=threads)), write
    import torch

    from ncalm.nca.cuda import CudaGenerator

    gen = CudaGenerator(cfg, seed, device, threads=threads or None)
    staging = torch.empty((chunk, cfg.seq_len + 1), dtype=torch.int32, device=gen.device)

    def write_gpu(ids, rules, out):
        part = staging[: len(ids)]
        gen.generate_into(part, ids, rule_ids=rules)
        out[...] = part.cpu().numpy()  # .cpu() waits for the kernel; the vocabulary fits uint16 (checked)

    return gen.find_rules, write_gpu


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as held:
        return _run(args, held)


def _run(args: argparse.Namespace, held: contextlib.ExitStack) -> int:
    from tqdm import tqdm

    from ncalm.data.shard_check import damaged_shards, shard_record  # ncalm.data imports torch: not for --help

    if args.chunk < 1:
        raise ValueError(f"--chunk {args.chunk}: must be >= 1")
    if args.threads < 0:
        raise ValueError(f"--threads {args.threads}: must be >= 0 (0 = all cores)")
    if args.start < 0:
        raise ValueError(f"--start {args.start}: must be >= 0")
    cfg = nca_config(args)
    seq_tokens = cfg.seq_len + 1
    if cfg.vocab_size > 2**16:
        cells = cfg.patch * cfg.patch
        most = max((c for c in range(2, 257) if c**cells + 2 <= 2**16), default=None)
        hint = f"with --patch {cfg.patch}, at most --colors {most}" if most else "use a smaller --patch"
        raise ValueError(f"--colors {cfg.colors} --patch {cfg.patch}: the uint16 shards need "
                         f"colors**(patch*patch)+2 <= 65536, got {cfg.vocab_size:,} ({hint})")
    n_seq = args.sequences if args.sequences is not None else math.ceil((args.tokens or 10**7) / seq_tokens)
    if args.start + n_seq - 1 > MAX_SEQ_ID:
        raise ValueError(f"--start {args.start}: the ids of {n_seq:,} sequences from there exceed the stream's "
                         f"last id, 2**40 - 1 = {MAX_SEQ_ID}")
    shard_seq = max(1, args.shard_tokens // seq_tokens)
    plan = {"format": "ncalm-nca-shards/1", "dtype": "uint16", "sequence_tokens": seq_tokens,
            "config": cfg.to_dict(), "seed": args.seed, "start": args.start, "sequences": n_seq,
            "shard_sequences": shard_seq, "vocab_size": cfg.vocab_size}
    _seed(args.seed)  # before the output directory is touched
    chunk = min(args.chunk, shard_seq, n_seq)  # no buffer larger than what is written at once
    check_fits(chunk * seq_tokens * 6, f"--chunk {args.chunk}")  # uint16 buffer, int32 tokens on a GPU
    device = resolve_device(args.device, cfg)
    find, write = backend(cfg, args.seed, args.threads, chunk, device)  # refuses before anything is written
    buf = np.empty((chunk, seq_tokens), dtype=np.uint16)

    def stream(ids: np.ndarray) -> np.ndarray:
        write(ids, find(ids)[0], buf[: len(ids)])
        return buf[: len(ids)]

    held.enter_context(exclusive(args.out))
    manifest = _prepare_dir(args.out, plan, args.force, args.resume)
    if args.resume:
        for index in damaged_shards(args.out, manifest, plan, len(HIST_BINS) - 1, stream):
            record = manifest["shards"][index]
            print(f"{args.out / record['file']} is not the stream it lists (missing, cut short or altered): "
                  f"writing it again", file=sys.stderr)
            _write_shard(args.out / record["file"], record["first_sequence"], record["sequences"], stream, chunk)
    done = sum(s["sequences"] for s in manifest["shards"])
    counts = np.array(manifest["histogram"]["counts"], dtype=np.int64)
    t0 = time.perf_counter()
    bar = tqdm(total=n_seq * seq_tokens, initial=done * seq_tokens, unit="tok", unit_scale=True,
               disable=args.no_progress, desc="generate")

    def tally(ids: np.ndarray) -> np.ndarray:
        rules, ratios = find(ids)
        if cfg.band:  # a rule id's attempt number sits above bit 40: attempt + 1 candidates each
            manifest["candidates_scored"] += int(((rules >> np.uint64(40)) + np.uint64(1)).sum())
            counts[:] += np.histogram(ratios, bins=HIST_BINS)[0]
        write(ids, rules, buf[: len(ids)])
        bar.update(len(ids) * seq_tokens)
        return buf[: len(ids)]

    while done < n_seq:
        record = shard_record(plan, len(manifest["shards"]))
        _write_shard(args.out / record["file"], record["first_sequence"], record["sequences"], tally, chunk)
        manifest["shards"].append(record)
        done += record["sequences"]
        manifest["histogram"]["counts"] = counts.tolist()
        manifest["complete"] = done >= n_seq
        write_json(args.out / MANIFEST, manifest)
    bar.close()
    dt = time.perf_counter() - t0
    total = n_seq * seq_tokens
    accept = f", {n_seq / manifest['candidates_scored']:.1%} of candidates in band" if cfg.band and manifest["candidates_scored"] else ""
    print(f"wrote {total:,} tokens ({n_seq:,} sequences) in {len(manifest['shards'])} shard(s) to {args.out}"
          f"{accept}; this run {dt:.1f} s on {device}")
    return 0
