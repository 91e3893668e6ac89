"""What `ncalm generate` lays out, and a check of an interrupted output
against it before a resume certifies it.

Shard ``i`` of a plan holds a fixed range of sequence ids, so every listed
shard can be verified: its manifest record must be the one the plan lays
out, its file exactly that many sequences long, and its first and last
sequences equal to the stream's (regenerated: two sequences per shard).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

MANIFEST = "manifest.json"
FORMAT = "ncalm-nca-shards/1"  # the manifest's "format": what other readers check, and what --text refuses


def shard_record(plan: dict, index: int) -> dict:
    """The manifest record of shard ``index`` under ``plan`` (its file, ids and size)."""
    done = index * plan["shard_sequences"]
    n = min(plan["shard_sequences"], plan["sequences"] - done)
    return {"file": f"nca_{index:06d}.bin", "first_sequence": plan["start"] + done, "sequences": n,
            "tokens": n * plan["sequence_tokens"]}


def damaged_shards(out: Path, manifest: dict, plan: dict, bins: int,
                   stream: Callable[[np.ndarray], np.ndarray]) -> list[int]:
    """Indices of the listed shards whose file is missing, of another size, or
    not the stream (``stream(ids)`` gives the tokens of ``ids``). A shard list
    or histogram other than one this plan can produce is a ValueError naming
    the manifest: its counts cannot be trusted, so it is not repaired."""
    shards, hist = manifest["shards"], manifest["histogram"]
    well_formed = (
        isinstance(shards, list) and all(s == shard_record(plan, i) for i, s in enumerate(shards))
        and sum(s["sequences"] for s in shards) <= plan["sequences"]
        and isinstance(hist, dict) and isinstance(hist.get("counts"), list) and len(hist["counts"]) == bins
        and all(type(c) is int and c >= 0 for c in hist["counts"] + [manifest["candidates_scored"]]))
    if not well_formed:
        raise ValueError(f"--resume: {out / MANIFEST}: its shard list or histogram is not what "
                         f"`ncalm generate` writes for these settings (edited or damaged); start over with --force")
    bad = []
    for i, record in enumerate(shards):
        path = out / record["file"]
        if not path.is_file() or path.stat().st_size != 2 * record["tokens"]:
            bad.append(i)
            continue
        rows = np.memmap(path, dtype="<u2", mode="r").reshape(record["sequences"], -1)
        ends = ((0, record["first_sequence"]), (-1, record["first_sequence"] + record["sequences"] - 1))
        # One id a call: the caller's buffer may hold a single sequence (--chunk 1).
        if not all(np.array_equal(rows[row], stream(np.array([seq_id], np.uint64))[0]) for row, seq_id in ends):
            bad.append(i)
    return bad
