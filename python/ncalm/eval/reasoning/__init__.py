"""Downstream reasoning evaluation: GSM8K, HumanEval, BIG-Bench Hard, pass@k.

Submodules are imported on demand (``ncalm.eval.reasoning.gsm8k`` ...); the
sandbox in particular has no torch dependency.
"""
