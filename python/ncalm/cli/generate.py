"""Write filtered NCA token sequences to disk as uint16 shards plus a manifest.

Each shard (nca_000000.bin, ...) is a flat little-endian uint16 array, as
nanoGPT's train.bin: whole sequences of seq_len + 1 tokens back to back, so
np.memmap(path, np.uint16).reshape(-1, seq_len + 1) recovers them. A shard is
written under a temporary name (.NAME.tmpPID) and renamed when complete; manifest.json (written
atomically after every shard) lists the completed shards, the config, seed,
counts and the histogram of the accepted rules' complexity scores. An
interrupted run keeps its completed shards: rerun with --resume. A manifest
that lists no shard (a run that failed or was stopped before its first one)
holds nothing: a new run replaces it without --force.

The GPU backend (--device cuda, or auto when this build has CUDA kernels
and a GPU is usable) writes exactly the CPU backend's tokens.

examples:
  ncalm generate --tokens 100M --out nca/
  ncalm generate --sequences 5000 --band 0.3,0.4 --seed 1 --out nca-code/
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ncalm.atomic_json import read_json, replacing, write_json
from ncalm.cli.options import add_tree, tree_config
from ncalm.data.shard_check import FORMAT, MANIFEST, damaged_shards, shard_record
from ncalm.devices import device_setting
from ncalm.locks import exclusive
from ncalm.train.config import RunConfig
from ncalm.memory import check_fits
from ncalm.nca.config import PAPER_BAND, NCAConfig, check_seed
from ncalm.nca.cpu import MAX_SEQ_ID, check_band
from ncalm.nca.generator import backend, resolve_device
from ncalm.settings import (Settings, SettingError, at_least, check_same, folder, in_range, output_folder, same_as,
                            setting, table, within)

HIST_BINS = np.linspace(0.0, 2.0, 81)  # gzip ratios lie in [0, ~1.1]; 0.025-wide bins


@dataclass
class GenerateConfig(Settings):
    """What `ncalm generate` writes: the NCA config and the stream's slice, and where."""

    DASHED = True  # options --shard-tokens, --force, ... named after the fields

    out: str | None = setting(None, "output directory (required, no default)", check=folder)
    tokens: int | None = setting(None, "tokens to write (rounded up to whole sequences of seq_len + 1), e.g. 100M; "
                                       "unset: 10M, or sequences", check=at_least(1))
    sequences: int | None = setting(None, "sequences to write instead of tokens", check=at_least(1))
    seed: int = setting(0, "stream seed; sequence i is a pure function of (config, seed, i)", check=check_seed)
    start: int = setting(0, "id of the first sequence (to extend or shard a stream)",
                         check=in_range(0, MAX_SEQ_ID, shown="[0, 2**40 - 1]"))
    shard_tokens: int = setting(100_000_000, "tokens per shard file", check=at_least(1))
    chunk: int = setting(2048, "sequences generated per call (memory ~ chunk x seq_len x 2 B)", check=at_least(1))
    threads: int = setting(0, "CPU threads (0 = all cores); on a GPU, for gzip scoring", check=in_range(0, 4096))
    device: str = setting("auto", "cpu, cuda, cuda:N, or auto (the GPU backend when usable, else cpu); same tokens "
                                  "either way", check=device_setting)
    force: bool = setting(False, "overwrite an existing output directory's shards")
    resume: bool = setting(False, "continue an interrupted run in out")
    progress: bool = same_as(RunConfig, "progress")
    nca: NCAConfig = table(NCAConfig, "NCA config (defaults: the paper's)", band=PAPER_BAND)

    def validate(self) -> None:
        if self.out is None:
            raise SettingError("out", "required: the output directory (--out DIR)")
        if self.tokens is not None and self.sequences is not None:
            raise SettingError("sequences", "give tokens or sequences, not both")
        if self.force and self.resume:
            raise SettingError("resume", "resume continues the run in out and force replaces it: give one")
        if self.nca.vocab_size > 2**16:
            cells = self.nca.patch ** 2
            most = max((c for c in range(2, 257) if c**cells + 2 <= 2**16), default=None)
            hint = f"with --patch {self.nca.patch}, at most --colors {most}" if most else "use a smaller --patch"
            raise SettingError("nca", f"--colors {self.nca.colors} --patch {self.nca.patch}: the uint16 shards need "
                                      f"colors**(patch*patch)+2 <= 65536, got {self.nca.vocab_size:,} ({hint})")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_tree(p, GenerateConfig, GenerateConfig(out="OUT"), "generate", "nca.colors=6", groups=True)


def _lists_shards(manifest_path: Path) -> bool:
    """Whether the manifest there is worth keeping from a fresh run: a run that failed or was stopped before
    its first shard leaves one listing none, which a rerun replaces; anything else (unreadable, another
    program's) is kept."""
    try:
        return bool(json.loads(manifest_path.read_text(encoding="utf-8"))["shards"])
    except FileNotFoundError:
        return False
    except (ValueError, KeyError, TypeError, OSError):
        return True


def _prepare_dir(out: Path, plan: dict, force: bool, resume: bool) -> dict:
    """The manifest to continue from: fresh, or the interrupted run's."""
    manifest_path = out / MANIFEST
    existing = sorted(out.glob("nca_*.bin*")) if out.exists() else []
    if resume:
        if not manifest_path.exists():
            raise ValueError(f"--resume: no {MANIFEST} in {out}; nothing to resume")
        fixed = ("config", "seed", "start", "sequences", "shard_sequences")  # what the stream and its shards are
        manifest = read_json(manifest_path, (*fixed, "shards", "histogram", "candidates_scored"),
                             "manifest of `ncalm generate`")
        check_same({k: manifest[k] for k in fixed}, {k: plan[k] for k in fixed}, (), f"--resume: the run in {out}")
        for old in out.glob("nca_*.bin.tmp"):  # an older version's temporary name, which nothing writes now
            old.unlink(missing_ok=True)
        return manifest  # a temporary left by the interruption: removed by exclusive(), or written anew
    if existing or _lists_shards(manifest_path):
        if not force:
            raise FileExistsError(f"{out} already holds NCA shards; pass --force to overwrite or --resume to continue")
        for f in [manifest_path] + existing:  # the manifest first: never "complete" beside missing shards
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
    with replacing(path, "wb") as f:
        for lo in range(0, n, chunk):
            ids = np.arange(first + lo, first + min(lo + chunk, n), dtype=np.uint64)
            tokens(ids).astype("<u2", copy=False).tofile(f)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    g = tree_config(GenerateConfig, args)
    cfg, out = g.nca, output_folder("out", g.out)
    seq_tokens = cfg.seq_len + 1
    n_seq = g.sequences if g.sequences is not None else math.ceil((g.tokens or 10**7) / seq_tokens)
    if g.start + n_seq - 1 > MAX_SEQ_ID:
        raise ValueError(f"--start {g.start}: the ids of {n_seq:,} sequences from there exceed the stream's "
                         f"last id, 2**40 - 1 = {MAX_SEQ_ID}")
    shard_seq = max(1, g.shard_tokens // seq_tokens)
    plan = {"format": FORMAT, "dtype": "uint16", "sequence_tokens": seq_tokens,
            "config": cfg.to_dict(), "seed": g.seed, "start": g.start, "sequences": n_seq,
            "shard_sequences": shard_seq, "vocab_size": cfg.vocab_size}
    chunk = min(g.chunk, shard_seq, n_seq)  # no buffer larger than what is written at once
    check_fits(chunk * seq_tokens * 6, f"--chunk {g.chunk}")  # uint16 buffer, int32 tokens on a GPU
    device = resolve_device(g.device, cfg)
    gen = backend(cfg, g.seed, device, g.threads or None)  # refuses before anything is written
    with within("nca"):
        check_band(cfg, g.seed, g.threads or None)  # as does a band that holds no rule
    find, write = gen.find_rules, gen.tokens_into
    buf = np.empty((chunk, seq_tokens), dtype=np.uint16)

    def stream(ids: np.ndarray) -> np.ndarray:
        write(ids, find(ids)[0], buf[: len(ids)])
        return buf[: len(ids)]

    with exclusive(out):  # one writer; the bar and the summary need no lock
        manifest = _prepare_dir(out, plan, g.force, g.resume)
        try:
            if g.resume:
                for index in damaged_shards(out, manifest, plan, len(HIST_BINS) - 1, stream):
                    record = manifest["shards"][index]
                    print(f"{out / record['file']} is not the stream it lists (missing, cut short or altered): "
                          f"writing it again", file=sys.stderr)
                    _write_shard(out / record["file"], record["first_sequence"], record["sequences"], stream, chunk)
            done = sum(s["sequences"] for s in manifest["shards"])
            counts = np.array(manifest["histogram"]["counts"], dtype=np.int64)
            t0 = time.perf_counter()
            # Closed however the run ends, so that no message shares the bar's line.
            with tqdm(total=n_seq * seq_tokens, initial=done * seq_tokens, unit="tok", unit_scale=True,
                      disable=not g.progress, desc="generate") as bar:

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
                    _write_shard(out / record["file"], record["first_sequence"], record["sequences"], tally, chunk)
                    manifest["shards"].append(record)
                    done += record["sequences"]
                    manifest["histogram"]["counts"] = counts.tolist()
                    manifest["complete"] = done >= n_seq
                    write_json(out / MANIFEST, manifest)
        except KeyboardInterrupt:  # the shard being written is dropped; those listed are whole (resume checks them)
            kept = len(manifest["shards"])
            raise KeyboardInterrupt(f"{kept} complete shard(s) kept in {out}, listed in {MANIFEST}; rerun with "
                                    f"--resume{' in place of --force' if g.force else ''} to continue") from None
    dt = time.perf_counter() - t0
    total = n_seq * seq_tokens
    scored = manifest["candidates_scored"]
    accept = f", {n_seq / scored:.1%} of candidates in band" if cfg.band and scored else ""
    print(f"wrote {total:,} tokens ({n_seq:,} sequences) in {len(manifest['shards'])} shard(s) to {out}"
          f"{accept}; this run {dt:.1f} s on {device}")
    return 0
