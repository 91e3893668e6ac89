"""A complexity band for a corpus: the corpus's own gzip complexity, measured as the NCA's is.

The NCA filter scores a rule by ``len(gzip(tokens)) / len(tokens)`` over
``score_frames`` frames of patch tokens written as little-endian int32
(docs/nca-semantics.md). Here the same function scores windows of the corpus's
byte tokens of the same length (``score_frames x patches_per_frame`` tokens,
the same int32 layout), so both distributions are on one scale. The proposed
band is the central half (quartiles) of the corpus's window scores: NCA rules
about as compressible as the target text, the paper's finding that the best
band depends on the domain (code lower, about 0.3-0.4; web text and math higher).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ncalm.figures import pyplot, save_figure
from ncalm.nca.config import NCAConfig
from ncalm.nca.cpu import complexity, score_rules


def window_tokens(cfg: NCAConfig) -> int:
    """Tokens in one NCA score: its frames' patch tokens."""
    return cfg.score_frames * cfg.patches_per_frame


def corpus_scores(docs: list[str], window: int, n: int, seed: int = 0) -> np.ndarray:
    """Gzip complexity of ``n`` random windows of ``window`` byte tokens of the joined documents."""
    data = np.frombuffer("\n".join(docs).encode("utf-8"), dtype=np.uint8)
    if len(data) < window:
        raise ValueError(f"the corpus has {len(data)} bytes, fewer than one window of {window} tokens")
    starts = np.random.default_rng(seed).integers(0, len(data) - window + 1, n)
    return np.array([complexity(data[s:s + window].astype(np.int32)) for s in starts])


def nca_scores(cfg: NCAConfig, n: int, seed: int = 0) -> np.ndarray:
    """Complexity scores of ``n`` candidate rules (before any band)."""
    return np.asarray(score_rules(cfg, seed, np.arange(n)))


def propose_band(scores: np.ndarray) -> tuple[float, float]:
    """The quartiles of the corpus's window scores, to two decimals (lower down, upper up)."""
    lo, hi = np.percentile(scores, [25, 75])
    return float(np.floor(lo * 100) / 100), float(np.ceil(hi * 100) / 100)


def plot_band(corpus: np.ndarray, nca: np.ndarray, bands: dict[str, tuple[float, float]], path: str | Path,
              title: str) -> Path:
    """Histograms of the corpus's window scores and the NCA rules' scores, with ``bands`` marked."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 4))
    bins = np.linspace(0, max(1.0, corpus.max(), nca.max()) + 0.02, 60)
    ax.hist(nca, bins=bins, alpha=0.6, density=True, label=f"NCA rules ({len(nca)})")
    ax.hist(corpus, bins=bins, alpha=0.6, density=True, label=f"corpus windows ({len(corpus)})")
    for (name, (lo, hi)), color in zip(bands.items(), ("C2", "C3", "C4")):
        ax.axvspan(lo, min(hi, bins[-1]), color=color, alpha=0.15, label=f"{name} band ({lo:g}, {hi:g})")
    ax.set_xlabel("gzip complexity (compressed / raw, int32 tokens)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
