"""Training data: NCA, Dyck and language sources behind one batching scheme.

A source maps global item indices to ``(inputs, targets)`` (see
:mod:`ncalm.data.sharding`); :func:`make_loader` shards it over DataLoader
workers and distributed ranks, and resumes from a micro-batch index.
"""
from ncalm.data.corpus import documents
from ncalm.data.dyck import DyckSource
from ncalm.data.nca import NCASource
from ncalm.data.sharding import ShardedBatches, Source, make_loader, micro_batch_items
from ncalm.data.tokens import TokenSource, language_source

__all__ = ["documents", "DyckSource", "NCASource", "ShardedBatches", "Source", "make_loader",
           "micro_batch_items", "TokenSource", "language_source"]
