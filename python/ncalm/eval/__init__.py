"""Evaluation: bits per byte, NCA in-context accuracy, convergence speedup, plots.

Import the submodules directly (``from ncalm.eval.speedup import speedup``);
this package imports nothing itself so that the light ones stay torch-free.
"""
