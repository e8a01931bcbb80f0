"""The six inner boundaries between ILM and Bruch's membrane, named as eyepy names them.

Tian et al. (2015) trace eight boundaries on Spectralis maculae; besides ILM (label 1) and BM
(label 8, ``"RPE"`` here, as in the rest of this package) they are, top to bottom, in eyepy's
names (a boundary is named after the layer above it, as in Heidelberg's segmentation):

``RNFL`` RNFL/GCL (2), ``IPL`` IPL/INL (3), ``INL`` INL/OPL (4), ``OPL`` OPL/ONL (5),
``PR1`` the ellipsoid zone, IS/OS (6), ``PR2`` the interdigitation zone, OS/RPE (7).

Sequential constrained optimal paths (Chiu et al. 2010 style) on the b-scan already used for ILM
and BM: each boundary is an :func:`~.paths.optimal_path` through the signed axial derivative
(dark-to-bright ``+1`` or bright-to-dark ``-1`` going down), searched only between boundaries found
before it, in this order: PR1 (the strongest step), PR2 (below it), OPL (the step just above the
middle of the ONL, the darkest thick band above PR1), IPL (above OPL), INL (between them) and RNFL.
Lines never cross: each stays between its neighbours. Where ILM or BM is missing they are NaN too.
Search bands are fractions of the b-scan height (tuned on 496-row Spectralis b-scans, Tian 1-3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .paths import OUTSIDE, optimal_path, positive_unit, subpixel_peak

#: Inner boundaries, top to bottom (eyepy's names), and the Tian label (1-8) each one is.
INNER_NAMES: tuple[str, ...] = ("RNFL", "IPL", "INL", "OPL", "PR1", "PR2")
TIAN_LABELS: dict[str, int] = {"ILM": 1, "RNFL": 2, "IPL": 3, "INL": 4, "OPL": 5, "PR1": 6, "PR2": 7,
                               "RPE": 8}
#: All eight boundaries, top to bottom (``RPE`` = Bruch's membrane, as in :data:`BOUNDARY_NAMES`).
LAYER_BOUNDARIES: tuple[str, ...] = ("ILM", *INNER_NAMES, "RPE")
#: Layers between consecutive boundaries (Tian's seven layers), by eyepy's layer names.
LAYER_NAMES: tuple[str, ...] = ("RNFL", "GCL+IPL", "INL", "OPL", "ONL+IS", "OS", "RPE")
#: Sign of the axial step each inner boundary has going down (+1 dark-to-bright).
SIGNS: dict[str, int] = {"RNFL": -1, "IPL": -1, "INL": 1, "OPL": -1, "PR1": 1, "PR2": 1}


@dataclass(frozen=True)
class LayerParams:
    """Tuning of the inner boundaries (fractions are of the b-scan height)."""

    sigma: tuple[float, float] = (1.0, 3.0)   # smoothing for the derivative (axial, lateral)
    pr1_top: float = 0.075                    # PR1 searched from this far above BM ...
    pr1_bottom: float = 0.012                 # ... down to this far above BM
    gap: int = 2                              # rows kept between neighbouring boundaries
    onl_min: float = 0.02                     # OPL at least this far above PR1 (the ONL) ...
    onl_max: float = 0.09                     # ... and at most this far
    onl_sigma: tuple[float, float] = (3.0, 6.0)  # smoothing that finds the ONL
    pr2_gap: int = 4                          # PR2 at least this many rows below PR1
    opl_reach: float = 0.03                   # OPL within this above the ONL's middle
    reach: float = 0.035                      # IPL within this above OPL
    step: int = 1                             # largest row change between A-scans
    penalty: float = 0.3
    pr_penalty: float = 0.15                  # PR1 and PR2 are smooth
    offset: float = 0.5                       # as :attr:`PathParams.offset`


def _fill(line: np.ndarray) -> np.ndarray:
    """``line`` with NaN interpolated from the nearest finite values (constant beyond the ends)."""
    line = np.asarray(line, np.float64)
    ok = np.isfinite(line)
    x = np.arange(line.size)
    return np.interp(x, x[ok], line[ok])


def _search(score: np.ndarray, upper: np.ndarray, lower: np.ndarray, step: int, penalty: float
            ) -> np.ndarray:
    """Rows (int, (W,)) of the least-cost path of ``-score`` with upper <= row <= lower per column."""
    h = score.shape[0]
    upper = np.clip(np.floor(upper), 0, h - 1).astype(np.int64)
    lower = np.clip(np.ceil(lower), 0, h - 1).astype(np.int64)
    lower = np.maximum(lower, upper)
    lo, hi = int(upper.min()), int(lower.max()) + 1
    rows = np.arange(lo, hi)[:, None]
    cost = -score[lo:hi].copy()
    cost[(rows < upper[None]) | (rows > lower[None])] = OUTSIDE
    path = lo + optimal_path(cost, step, penalty)
    return np.clip(path, upper, lower)


def inner_boundaries(unit: np.ndarray, ilm: np.ndarray, bm: np.ndarray,
                     params: LayerParams | None = None, *, onl_smooth: np.ndarray | None = None
                     ) -> dict[str, np.ndarray]:
    """The six inner boundaries (float64 (W,) rows, 0 = top, NaN where ILM or BM is) of a [0, 1]
    b-scan between its ``ilm`` and ``bm`` rows (as :func:`~.paths.refine_paths` gives them).

    ``onl_smooth``: ``unit`` already Gaussian-smoothed by ``params.onl_sigma`` (computed when None).
    """
    p = params or LayerParams()
    unit = np.asarray(unit, np.float32)
    h, w = unit.shape
    ilm = np.asarray(ilm, np.float64)
    bm = np.asarray(bm, np.float64)
    missing = ~(np.isfinite(ilm) & np.isfinite(bm))
    if missing.all():
        return {name: np.full(w, np.nan) for name in INNER_NAMES}
    top, bottom = _fill(ilm), _fill(bm)
    smooth = ndi.gaussian_filter(unit, p.sigma)
    grad = np.gradient(smooth, axis=0)
    up, down = positive_unit(grad), positive_unit(-grad)
    g = p.gap
    rows: dict[str, np.ndarray] = {}
    # PR1: the strongest dark-to-bright step of the outer retina
    rows["PR1"] = _search(up, np.maximum(bottom - p.pr1_top * h, top + g), bottom - p.pr1_bottom * h,
                          p.step, p.pr_penalty)
    rows["PR2"] = _search(up, rows["PR1"] + p.pr2_gap, bottom - g, p.step, p.pr_penalty)
    # the ONL: the darkest thick band above PR1; OPL/ONL is the bright-to-dark step above its middle
    dark = ndi.gaussian_filter(unit, p.onl_sigma) if onl_smooth is None else onl_smooth
    dark = 1 - dark / max(float(np.percentile(dark, 99.5)), 1e-6)
    onl = _search(dark, np.maximum(rows["PR1"] - p.onl_max * h, top), rows["PR1"] - p.onl_min * h,
                  p.step, p.pr_penalty)
    rows["OPL"] = _search(down, np.maximum(onl - p.opl_reach * h, top), onl, p.step, p.penalty)
    # IPL/INL (bright-to-dark) is the stronger edge of the thin INL; INL/OPL lies between the two
    rows["IPL"] = _search(down, np.maximum(rows["OPL"] - p.reach * h, top), rows["OPL"] - 2 * g,
                          p.step, p.penalty)
    rows["INL"] = _search(up, rows["IPL"] + g, rows["OPL"] - g, p.step, p.penalty)
    rows["RNFL"] = _search(down, top, rows["IPL"] - g, p.step, p.penalty)
    out = {}
    for name in INNER_NAMES:
        edge = up if SIGNS[name] > 0 else down
        out[name] = subpixel_peak(edge, rows[name]) + p.offset
    # sub-pixel moves may not reorder: clip each between its neighbours (all finite from here on)
    prev = top
    for name in INNER_NAMES:
        out[name] = np.maximum(out[name], prev)
        prev = out[name]
    nxt = bottom
    for name in reversed(INNER_NAMES):
        out[name] = np.minimum(out[name], nxt)
        nxt = out[name]
    for name in INNER_NAMES:
        out[name][missing] = np.nan
    return out
