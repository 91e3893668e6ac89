"""The language model: its config, tokenizers, sampling, checkpoints and weight transfer.

Import the submodules directly; this package imports nothing itself so that
``ncalm.lm.config`` stays free of torch.
"""
