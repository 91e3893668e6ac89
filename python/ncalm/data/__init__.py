"""Training data: NCA, Dyck and language sources behind one batching scheme, and DataConfig.

A source maps global item indices to ``(inputs, targets)`` (see
:mod:`ncalm.data.sharding`); :func:`~ncalm.data.sharding.make_loader` shards it
over DataLoader workers and distributed ranks, and resumes from a micro-batch
index. Import the submodules directly; this package imports nothing itself, so
that ``ncalm.data.config`` stays free of torch.
"""
