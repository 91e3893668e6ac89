"""Evaluation: bits per byte, NCA in-context accuracy, convergence speedup, plots.

Import the submodules directly (``from ncalm.evaluation.speedup import speedup``);
this package imports nothing itself so that the light ones stay torch-free.
"""
