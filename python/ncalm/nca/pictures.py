"""Pictures of NCA data: trajectory strips (PNG), animations (GIF), complexity histograms.

Cells are drawn as solid squares of ``scale`` pixels, one fixed colour per
state from a qualitative colormap, so the same state has the same colour in
every rule, frame and file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ncalm.figures import pyplot, save_figure
from ncalm.nca.cpu import in_band

SCALE = 8  # pixels per cell, the default of `ncalm show --scale`

GAP_RGB = (255, 255, 255)  # separator between grids


def palette(colors: int) -> np.ndarray:
    """(colors, 3) uint8 RGB: tab10 / tab20 when they suffice, evenly spaced hues beyond."""
    import matplotlib

    if colors < 1:
        raise ValueError(f"colors must be >= 1, got {colors}")
    if colors <= 20:
        rgb = matplotlib.colormaps["tab10" if colors <= 10 else "tab20"].colors[:colors]
    else:
        rgb = matplotlib.colormaps["turbo"](np.linspace(0, 1, colors))[:, :3]
    return (np.asarray(rgb) * 255).round().astype(np.uint8)


def tile(grids: np.ndarray, scale: int = SCALE, gap: int = 2) -> np.ndarray:
    """(rows, cols, H, W) states -> one (h, w) index image; separators get index -1."""
    grids = np.asarray(grids)
    if grids.ndim != 4:
        raise ValueError(f"grids must have shape (rows, cols, H, W), got {grids.shape}")
    if scale < 1 or gap < 0:
        raise ValueError(f"scale must be >= 1 and gap >= 0, got scale={scale}, gap={gap}")
    rows, cols, h, w = grids.shape
    big = grids.repeat(scale, axis=2).repeat(scale, axis=3).astype(np.int16)
    # Each grid with a separator below and to its right, laid out row by row; the last ones are cut off.
    cells = np.pad(big, ((0, 0), (0, 0), (0, gap), (0, gap)), constant_values=-1)
    out = cells.transpose(0, 2, 1, 3).reshape(rows * (h * scale + gap), cols * (w * scale + gap))
    return out[:out.shape[0] - gap, :out.shape[1] - gap]


def strip_bytes(rows: int, cols: int, side: int, scale: int = SCALE, gap: int = 2) -> int:
    """Peak memory of ``save_strip`` for (rows, cols, side, side) grids: per pixel, tile's int16 copies (6 B)
    or its index image beside the RGB image and PIL's 4-byte copy of it (9 B), with a byte to spare."""
    return 10 * rows * cols * (side * scale + gap) ** 2


def _lut(colors: int) -> np.ndarray:
    """(colors + 1, 3) uint8: the state colours, then the separator at index `colors`, which is also index -1
    (the separator of a tiled image): ``_lut(colors)[image]`` is the image in RGB."""
    return np.vstack([palette(colors), np.asarray(GAP_RGB, dtype=np.uint8)])


def save_strip(grids: np.ndarray, path: str | Path, colors: int, scale: int = SCALE, gap: int = 2) -> Path:
    """PNG of (rules, frames, H, W) trajectories: one row per rule, time left to right."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_lut(colors)[tile(grids, scale, gap)]).save(path)
    return path


def save_gif(grids: np.ndarray, path: str | Path, colors: int, scale: int = SCALE, gap: int = 2,
             per_row: int = 4, duration_ms: int = 200) -> Path:
    """Animated GIF of (rules, frames, H, W): every rule side by side, one GIF frame per time step."""
    from PIL import Image

    grids = np.asarray(grids)
    n_rules, n_frames, h, w = grids.shape
    per_row = max(1, min(per_row, n_rules))
    n_rows = -(-n_rules // per_row)
    # Pad the last row with separator-coloured blanks so every row is full.
    padded = np.full((n_rows * per_row, n_frames, h, w), -1, dtype=np.int16)
    padded[:n_rules] = grids
    # An indexed palette keeps the state colours exact (no GIF quantisation). A GIF
    # palette holds 256 entries: with 256 states the separator shares state 255's colour.
    separator = min(colors, 255)
    flat_palette = _lut(colors)[:256].ravel().tolist()
    images = []
    for t in range(n_frames):
        index = tile(padded[:, t].reshape(n_rows, per_row, h, w), scale, gap)
        img = Image.fromarray(np.where(index < 0, separator, index).astype(np.uint8), mode="P")
        img.putpalette(flat_palette)
        images.append(img)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0,
                   optimize=False)
    return path


def save_complexity_histogram(ratios: Sequence[float], band: tuple[float, float] | None,
                              path: str | Path, bins: int = 60) -> Path:
    """Histogram of candidate rules' gzip ratios, the band shaded and the accepted share in the title."""
    plt = pyplot()

    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.size == 0:
        raise ValueError("ratios: no candidate rules to plot")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.hist(ratios, bins=bins, color="#4c72b0", edgecolor="white", lw=0.3)
    title = f"gzip complexity of {ratios.size} candidate rules"
    if band is not None:
        lo, hi = band
        ax.axvspan(lo, min(hi, max(1.0, ratios.max())), color="#dd8452", alpha=0.25, zorder=0,
                   label=f"band ({lo:g}, {hi:g})")
        for x in (lo, hi):
            ax.axvline(x, color="#dd8452", lw=1.5)
        title += f": {accepted_fraction(ratios, band):.1%} inside the band"
        ax.legend()
    ax.set_xlabel("compressed / raw size (gzip -9 of the int32 tokens)")
    ax.set_ylabel("rules")
    ax.set_title(title)
    return save_figure(fig, path)


def accepted_fraction(ratios: Sequence[float], band: tuple[float, float]) -> float:
    """Share of ``ratios`` strictly inside ``band`` (the filter's rule)."""
    return float(in_band(ratios, band).mean())
