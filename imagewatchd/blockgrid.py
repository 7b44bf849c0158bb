"""A picture's block grid: the mean grey level of each of 16x16 blocks (256 bytes), and whether
two grids agree once the blocks a watermark damaged are set aside.

A watermark (a label in a corner, a word across the diagonal) damages some blocks and leaves the
rest as they were; a different photograph, even of the same place, disagrees in many. A list
entry keeps its grid (``entry_grids``) and a candidate that the hashes find only at a wider
radius (imagewatchd/verify.py) matches when the two grids agree (docs/BENCHMARKS.md, "Issue 8:
watermarks").

Agreement, twice: the query's block levels are fitted to the entry's by a straight line (gain
and offset: a brightness or contrast change moves every block alike), and its neighbour
differences by a gain alone. Each fit is robust: refitted on the 75% of blocks that fit best,
so the damaged quarter does not pull it. On those blocks both correlations must be nearly
perfect. A falling line (an inverted picture) never agrees, and an entry whose grid has almost
no structure (a faint paper scan: any smooth shading correlates with it) is not verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

SIDE: Final = 16  # blocks per side
SIZE: Final = SIDE * SIDE  # bytes of a grid, one per block
KEEP: Final = 0.75  # the share of best-fitting blocks each refit uses
FITS: Final = 3  # the first fit and two refits
LEVELS: Final = 0.998  # the kept blocks' levels correlate at least this much…
EDGES: Final = 0.995  # …and their neighbour differences (cosine, through the origin)
STRUCTURE: Final = 2.0  # grey levels: the entry's RMS neighbour difference must reach this

Floats = NDArray[np.float64]


def grid_of(grey: Image.Image) -> bytes:
    """The 16x16 block means of a greyscale picture (the fingerprint stage's working image)."""
    return grey.resize((SIDE, SIDE), Image.Resampling.BOX).tobytes()


def agreement(stored: bytes, query: bytes, *, early: bool = False) -> tuple[float, float]:
    """(levels, edges): the correlations of the query's grid with the entry's, on the blocks
    that fit best; (0, 0) when there is nothing to compare. With ``early``, edges are not
    computed (0) when the levels already disagree."""
    if len(stored) != SIZE or len(query) != SIZE or structure(stored) < STRUCTURE:
        return 0.0, 0.0
    x, y = _levels(stored), _levels(query)
    levels = _fitted(x, y, offset=True)
    if early and levels < LEVELS:
        return levels, 0.0
    return levels, _fitted(_edges(x), _edges(y), offset=False)


def agreement_many(stored: Sequence[bytes], query: bytes) -> list[tuple[float, float]]:
    """``agreement(grid, query, early=True)`` for each stored grid (equal up to rounding), the
    levels of all of them fitted in one pass (a list lookup compares several: verify.py)."""
    fine = _structured(stored)
    grids = [grid for grid, ok in zip(stored, fine, strict=True) if ok]
    if len(query) != SIZE or not grids:
        return [(0.0, 0.0)] * len(stored)
    x = np.frombuffer(b"".join(grids), np.uint8).astype(np.float64).reshape(len(grids), SIZE)
    y = _levels(query)
    levels = iter(_fitted_many(x, y.ravel()).tolist())
    found = []
    for grid, ok in zip(stored, fine, strict=True):
        value = next(levels) if ok else 0.0
        edges = _fitted(_edges(_levels(grid)), _edges(y), offset=False) if value >= LEVELS else 0.0
        found.append((value, edges))
    return found


def agrees(stored: bytes, query: bytes) -> bool:
    levels, edges = agreement(stored, query, early=True)
    return levels >= LEVELS and edges >= EDGES


def structure(grid: bytes) -> float:
    """The RMS difference between neighbouring blocks, in grey levels."""
    edges = _edges(_levels(grid))
    return float(np.sqrt(np.mean(edges * edges)))


def _structured(stored: Sequence[bytes]) -> list[bool]:
    """Whether each grid is whole and ``structure(grid) >= STRUCTURE``, all in one pass (the
    same values: the squared differences are integers, their sums exact)."""
    whole = [len(grid) == SIZE for grid in stored]
    grids = [grid for grid, ok in zip(stored, whole, strict=True) if ok]
    if not grids:
        return whole
    levels = np.frombuffer(b"".join(grids), np.uint8).astype(np.float64)
    levels = levels.reshape(len(grids), SIDE, SIDE)
    down, across = np.diff(levels, axis=1), np.diff(levels, axis=2)
    squares = (down * down).sum(axis=(1, 2)) + (across * across).sum(axis=(1, 2))
    rms = iter(np.sqrt(squares / (2 * SIDE * (SIDE - 1))).tolist())
    return [ok and next(rms) >= STRUCTURE for ok in whole]


def _levels(grid: bytes) -> Floats:
    return np.frombuffer(grid, np.uint8).astype(np.float64).reshape(SIDE, SIDE)


def _edges(levels: Floats) -> Floats:
    return np.concatenate([np.diff(levels, axis=0).ravel(), np.diff(levels, axis=1).ravel()])


def _fitted(x: Floats, y: Floats, *, offset: bool) -> float:
    """The correlation (centred with ``offset``, else cosine) of ``y`` with ``x`` on the blocks
    that fit the robust line best; 0 for a falling line or no variation."""
    x, y = x.ravel(), y.ravel()
    chosen = np.ones(x.shape, dtype=bool)
    for _ in range(FITS):
        xs, ys = x[chosen], y[chosen]
        xc, yc = (xs - xs.mean(), ys - ys.mean()) if offset else (xs, ys)
        spread = float(np.mean(xc * xc))
        if spread < 1e-6:
            return 0.0
        gain = float(np.mean(xc * yc)) / spread
        if gain <= 0:
            return 0.0
        residuals = np.abs(y - gain * x - (ys.mean() - gain * xs.mean() if offset else 0.0))
        kth = int(KEEP * (len(residuals) - 1))  # np.quantile's rank, without interpolating:
        chosen = residuals <= np.partition(residuals, kth)[kth]  # the same blocks, 10x faster
    xs, ys = x[chosen], y[chosen]
    if offset:
        xs, ys = xs - xs.mean(), ys - ys.mean()
    norm = float(np.sqrt(np.sum(xs * xs) * np.sum(ys * ys)))
    return float(np.sum(xs * ys)) / norm if norm > 1e-9 else 0.0


def _fitted_many(x: Floats, y: Floats) -> Floats:
    """``_fitted(row, y, offset=True)`` for each row of ``x`` (n, 256), in one pass."""
    chosen = np.ones(x.shape, dtype=bool)
    valid = np.ones(len(x), dtype=bool)
    kth = int(KEEP * (x.shape[1] - 1))
    for _ in range(FITS):
        count = chosen.sum(axis=1)
        xm, ym = (np.where(chosen, v, 0.0).sum(axis=1) / count for v in (x, y))
        xc, yc = np.where(chosen, x - xm[:, None], 0.0), np.where(chosen, y - ym[:, None], 0.0)
        spread = (xc * xc).sum(axis=1) / count
        valid &= spread >= 1e-6
        gain = np.where(valid, (xc * yc).sum(axis=1) / count / np.where(valid, spread, 1.0), 0.0)
        valid &= gain > 0
        residuals = np.abs(y - gain[:, None] * x - (ym - gain * xm)[:, None])
        chosen = residuals <= np.partition(residuals, kth, axis=1)[:, kth : kth + 1]
    count = chosen.sum(axis=1)
    xm, ym = (np.where(chosen, v, 0.0).sum(axis=1) / count for v in (x, y))
    xc, yc = np.where(chosen, x - xm[:, None], 0.0), np.where(chosen, y - ym[:, None], 0.0)
    norm = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    ok = valid & (norm > 1e-9)
    result: Floats = np.where(ok, (xc * yc).sum(axis=1) / np.where(ok, norm, 1.0), 0.0)
    return result
