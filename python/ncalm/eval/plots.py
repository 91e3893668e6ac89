"""Validation-loss curves of several arms: mean over seeds with a min-max band."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ncalm.eval.speedup import Curve
from ncalm.figures import pyplot, save_figure

# The colour cycle has 10 colours; each further 10 arms (--ablations makes 11) get the next line style,
# so up to 40 arms have a distinct (colour, style).
LINE_STYLES = ("-", "--", ":", "-.")


def mean_and_spread(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, mean, lo, hi)`` of several seeds' curves on the first curve's x grid.

    Seeds normally share their evaluation points; where they do not, each curve
    is interpolated linearly onto the grid, restricted to the range all cover.
    """
    if not curves or any(len(c) == 0 for c in curves):
        raise ValueError("curves: need at least one non-empty curve")
    arrays = [np.asarray(c, dtype=np.float64) for c in curves]
    lo_x = max(a[0, 0] for a in arrays)
    hi_x = min(a[-1, 0] for a in arrays)
    x = arrays[0][:, 0]
    x = x[(x >= lo_x) & (x <= hi_x)]
    if x.size == 0:
        raise ValueError("curves: the seeds' curves share no range of tokens")
    ys = np.stack([np.interp(x, a[:, 0], a[:, 1]) for a in arrays])
    return x, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


def plot_loss_curves(arms: Mapping[str, Sequence[Curve]], path: str | Path,
                     title: str = "language-stage validation loss") -> Path:
    """Write a PNG with one line per arm (mean over seeds) and its min-max band.

    The right panel repeats the curves from half the token range on,
    where the arms' differences are too small to see at the full scale.
    """
    plt = pyplot()

    if not arms:
        raise ValueError("arms: nothing to plot")
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    x_max = 0.0
    for i, (name, curves) in enumerate(arms.items()):
        x, mean, lo, hi = mean_and_spread(curves)
        x_max = max(x_max, float(x[-1]))
        n = len(curves)
        color, style = f"C{i % 10}", LINE_STYLES[i // 10 % len(LINE_STYLES)]  # C10 would be C0 again
        for a in (ax, zoom):
            a.plot(x, mean, color=color, ls=style, lw=1.8, label=f"{name} (n={n})" if n > 1 else name)
            if n > 1:
                a.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
    x0 = 0.5 * x_max
    # Finite losses only: a diverged seed's NaN or inf would make the limits NaN (matplotlib draws such points
    # as gaps and leaves them out of its own autoscaling).
    ys = [y for curves in arms.values() for c in curves for t, y in c if t >= x0 and math.isfinite(y)]
    if ys:
        pad = 0.05 * (max(ys) - min(ys) or 1.0)
        zoom.set_xlim(x0, x_max)
        zoom.set_ylim(min(ys) - pad, max(ys) + pad)
    zoom.set_title(f"from {x0:,.0f} language tokens")
    spread = any(len(c) > 1 for c in arms.values())
    ax.set_title(title + (" (band: min-max over seeds)" if spread else ""))
    for a in (ax, zoom):
        a.set_xlabel("language tokens")
        a.grid(alpha=0.3)
    ax.set_ylabel("validation loss (nats/token)")
    ax.legend()
    return save_figure(fig, path)
