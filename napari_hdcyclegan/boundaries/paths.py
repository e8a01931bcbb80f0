"""Stage two: ILM and Bruch's membrane as optimal paths through a b-scan (Chiu et al. 2010 style).

Each boundary is the path of least summed cost from the first to the last A-scan, moving at most
``max_step`` rows between neighbouring A-scans with a quadratic step penalty, found by column-wise
dynamic programming (:func:`optimal_path`, vectorised over rows). Costs come from the b-scan itself
(denoised or smoothed); stage one (the skeleton) and a neighbouring b-scan only add a weak,
capped pull towards their lines, so a different model's feature maps change little.

1. RPE band: the brightest smooth band that has no other bright band far below it (the RPE is the
   lowest hyper-reflective band; a bright RNFL near the disc has the RPE beneath it).
2. ILM: the strongest dark-to-bright step above the band (at least ``min_thickness`` above it),
   mixing a fine derivative (position) with a box step of ``box`` rows (mean below minus mean
   above), which a thin posterior hyaloid (dark below it again) does not have.
3. BM: the strongest bright-to-dark step from just above the band centre to ``bm_depth`` below it.
4. Sub-pixel: the extremum of the derivative within 1 px of the path, parabola vertex, then
   ``offset`` (0.5: rows are the first row past the steepest step; tuned on manual labels).
5. Circle scans folding over the top edge: A-scans where the ILM reaches the top band, and the
   mirrored part between there and the nearer image end, are NaN (:func:`fold_mask`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Cost outside the search region (finite, so a column with no allowed row still has a path).
OUTSIDE = np.float32(10.0)


@dataclass(frozen=True)
class PathParams:
    """Tuning of the optimal-path refinement (fractions are of the b-scan height)."""

    sigma: tuple[float, float] = (1.5, 3.0)       # smoothing for the edge derivative (axial, lateral)
    band_sigma: tuple[float, float] = (3.0, 6.0)  # smoothing for the RPE band
    box: int = 6                                  # rows on each side of the ILM box step
    fine_weight: float = 0.5                      # share of the fine derivative in the ILM cost
    bright_frac: float = 0.85                     # "bright" = above this fraction of the column max
    band_gap: float = 0.03                        # bright rows this far below the band count against it
    low_weight: float = 0.7
    below_gap: float = 0.06                       # a band this far below, at least below_ratio as
    below_ratio: float = 0.7                      # bright, also counts against (relative to the row)
    band_step: int = 4
    band_penalty: float = 0.1
    ilm_step: int = 5
    ilm_penalty: float = 0.03
    bm_step: int = 4
    bm_penalty: float = 0.12                      # stiff: the BM is smooth; noise and vessels are not
    min_thickness: float = 0.08
    bm_depth: float = 0.03                        # deeper reaches the lower edge of a thick RPE/choroid complex
    prior_weight: float = 0.3                     # pull towards a prior line, capped at prior_cap
    prior_cap: float = 0.04
    offset: float = 0.5
    # ILM this close to the top: the retina folds over. 0.012 x 496 = 5.95 rows sat on the edge of
    # valid.vol's fold (ILM at row 6) and flipped 205 A-scans with a one-row shift of the first image row
    fold_margin: float = 0.016


def optimal_path(cost: np.ndarray, max_step: int, penalty: float) -> np.ndarray:
    """Row per column (int, (W,)) minimising sum(cost) + penalty * step^2, |step| <= max_step."""
    h, w = cost.shape
    d = max(int(max_step), 0)
    n = 2 * d + 1
    pen = (float(penalty) * np.arange(-d, d + 1) ** 2).astype(np.float32)[:, None]
    cols = np.ascontiguousarray(np.asarray(cost, np.float32).T)
    acc = cols[0].copy()
    back = np.empty((w, h), np.int8)
    rows = np.arange(h)
    pad = np.full(h + 2 * d, np.float32(1e9), np.float32)
    # row j of ``shifted`` is pad[j:j + h]: the accumulated cost of row r + j - d in the last column
    shifted = np.lib.stride_tricks.as_strided(pad, shape=(n, h), strides=(pad.strides[0],) * 2)
    tmp = np.empty((n, h), np.float32)
    for c in range(1, w):
        pad[d:d + h] = acc
        np.add(shifted, pen, out=tmp)
        k = tmp.argmin(axis=0)
        acc = tmp[k, rows] + cols[c]
        back[c] = k
    path = np.empty(w, np.int64)
    path[-1] = int(np.argmin(acc))
    for c in range(w - 1, 0, -1):
        path[c - 1] = path[c] + int(back[c, path[c]]) - d
    return path


def cropped_path(cost: np.ndarray, lo: int, hi: int, max_step: int, penalty: float) -> np.ndarray:
    """:func:`optimal_path` over rows lo..hi-1 only (faster when the search region is narrow)."""
    lo, hi = max(int(lo), 0), min(int(hi), cost.shape[0])
    if hi - lo < 2:
        lo, hi = 0, cost.shape[0]
    return lo + optimal_path(cost[lo:hi], max_step, penalty)


def box_step(image: np.ndarray, k: int) -> np.ndarray:
    """Mean of rows r..r+k-1 minus mean of rows r-k..r-1, per pixel (edge-padded)."""
    h = image.shape[0]
    cs = np.cumsum(np.pad(image, ((k + 1, k + 1), (0, 0)), mode="edge"), axis=0)
    r = np.arange(h) + k + 1
    return ((cs[r + k - 1] - cs[r - 1]) - (cs[r - 1] - cs[r - k - 1])) / k


def positive_unit(x: np.ndarray, q: float = 99.0) -> np.ndarray:
    """Positive part of ``x`` divided by its ``q``-th percentile, clipped to [0, 1]."""
    x = np.clip(x, 0, None)
    pos = x[x > 0]
    scale = float(np.percentile(pos, q)) if pos.size else 1.0
    return np.clip(x / max(scale, 1e-9), 0, 1).astype(np.float32)


def prior_cost(line: np.ndarray | None, h: int, p: PathParams) -> np.ndarray | float:
    """Capped pull towards a prior line ((H, W) cost; 0 where the prior is NaN)."""
    if line is None or not np.isfinite(line).any():
        return 0.0
    rows = np.arange(h, dtype=np.float32)[:, None]
    ok = np.isfinite(line)
    dist = np.minimum(np.abs(rows - np.nan_to_num(line)[None]) / (p.prior_cap * h), 1.0)
    return p.prior_weight * np.where(ok[None], dist, 0.0).astype(np.float32)


def subpixel_peak(grad: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Row of the largest ``grad`` within 1 px of ``path`` per column, with a parabola vertex."""
    h, w = grad.shape
    cols = np.arange(w)
    cand = np.clip(path[None, :] + np.arange(-1, 2)[:, None], 1, h - 2)
    r = cand[np.argmax(grad[cand, cols], axis=0), cols]
    a, b, c = grad[r - 1, cols], grad[r, cols], grad[r + 1, cols]
    den = a - 2 * b + c
    with np.errstate(invalid="ignore", divide="ignore"):
        off = np.where(den < 0, 0.5 * (a - c) / den, 0.0)
    return r + np.clip(off, -0.5, 0.5)


def band_path(smooth: np.ndarray, border: int, prior: np.ndarray | float, p: PathParams) -> np.ndarray:
    """Centre row of the RPE band per column: bright, smooth, no bright band far below (found on
    the b-scan smoothed by ``p.band_sigma``, at half resolution in both axes, which keeps slopes in
    rows per column)."""
    h, w = smooth.shape
    sb = smooth[::2, ::2]
    bright = (sb > p.bright_frac * sb.max(axis=0, keepdims=True)).astype(np.float32)
    below = np.cumsum(bright[::-1], axis=0)[::-1]
    gap = max(int(p.band_gap * h / 2), 1)
    far = np.zeros_like(below)
    far[:-gap] = below[gap:]
    cost = -sb / max(float(np.percentile(sb, 99.5)), 1e-6) + p.low_weight * np.minimum(far / gap, 1.0)
    # relative: a band below (``below_gap`` on) nearly as bright as this row means this is not the RPE
    lower = max(int(p.below_gap * h / 2), 1)
    peak_below = np.zeros_like(sb)
    peak_below[:-lower] = np.maximum.accumulate(sb[::-1], axis=0)[::-1][lower:]
    ratio = peak_below / np.maximum(sb, 1e-6)
    cost = cost + p.low_weight * np.clip((ratio - p.below_ratio) / 0.2, 0.0, 1.0)
    if not np.isscalar(prior):
        cost = cost + np.asarray(prior)[::2, ::2]
    edge = max(border // 2, 1)
    cost[:edge] = cost[cost.shape[0] - edge:] = OUTSIDE
    half = optimal_path(cost.astype(np.float32), p.band_step, p.band_penalty)
    return np.rint(2 * np.interp(np.arange(w) / 2.0, np.arange(half.size), half)).astype(np.int64)


def refine_paths(unit: np.ndarray, priors: Mapping[str, np.ndarray | None] | None = None,
                 params: PathParams | None = None) -> dict[str, np.ndarray]:
    """ILM, RPE (= BM) and the RPE band centre of a [0, 1] b-scan, float64 (W,), NaN where the
    retina folds over the top edge, the axial derivative used (``grad``, (H, W)) and the b-scan
    smoothed by ``band_sigma`` (``band_smooth``, (H, W)). ``priors``: optional lines {"ILM", "RPE"}
    to pull towards."""
    p = params or PathParams()
    priors = priors or {}
    h, w = unit.shape
    unit = np.asarray(unit, np.float32)
    border = max(3, h // 100)
    smooth = ndi.gaussian_filter(unit, p.sigma)
    grad = np.gradient(smooth, axis=0)
    rows = np.arange(h)[:, None]
    band_smooth = ndi.gaussian_filter(unit, p.band_sigma)
    band = band_path(band_smooth, border, prior_cost(priors.get("RPE"), h, p), p)
    first = first_image_row(unit)
    edge = p.fine_weight * positive_unit(grad) + (1 - p.fine_weight) * positive_unit(
        box_step(smooth, p.box))
    cost = -edge + prior_cost(priors.get("ILM"), h, p)
    cost[(rows > band[None] - p.min_thickness * h) | (rows <= first)] = OUTSIDE
    top = int(band.max() - p.min_thickness * h) + 1
    ilm_rows = cropped_path(cost, first + 1, top, p.ilm_step, p.ilm_penalty)
    ilm = subpixel_peak(grad, ilm_rows)
    cost = -positive_unit(-grad) + prior_cost(priors.get("RPE"), h, p)
    cost[(rows < band[None] - 2) | (rows > band[None] + p.bm_depth * h) | (rows >= h - border)] = OUTSIDE
    bm = subpixel_peak(-grad, cropped_path(cost, band.min() - 2, band.max() + p.bm_depth * h + 1,
                                           p.bm_step, p.bm_penalty))
    ilm, bm = ilm + p.offset, bm + p.offset
    folded = fold_mask(ilm_rows.astype(np.float64), first, h, p.fold_margin)
    ilm[folded] = bm[folded] = np.nan
    return {"ILM": ilm, "RPE": bm, "band": band.astype(np.float64), "grad": grad, "band_smooth": band_smooth}


def first_image_row(unit: np.ndarray, max_rows: int = 16) -> int:
    """Index of the first row that is not blank among the top ``max_rows`` (row spread under a fifth
    of the typical row's); vendor exports often start with an empty row."""
    spread = unit[:max_rows].std(axis=1)
    live = spread > 0.05 * float(np.median(spread))
    return int(np.argmax(live)) if live.any() else 0


def fold_mask(ilm: np.ndarray, first: int, h: int, margin: float = 0.012, reach: float = 0.08,
              drop: float = 0.06, side: float = 0.34) -> np.ndarray:
    """A-scans where the retina runs over the top edge: runs of the ILM within ``margin`` x height
    of the first image row that the line leaves steeply (by more than ``drop`` x height within
    ``reach`` x width; a retina merely close to the top leaves gently). When such a run lies in the
    outer ``side`` of the width and the line beyond it falls away too, everything up to the nearer
    image end is marked as well (a retina folding over the top shows a mirrored copy there)."""
    w = ilm.size
    with np.errstate(invalid="ignore"):
        near = ilm - first <= margin * h
    out = np.zeros(w, bool)
    labels, _ = ndi.label(near)
    n = max(int(reach * w), 2)
    for run in ndi.find_objects(labels):
        a, b = run[0].start, run[0].stop
        level = float(np.nanmax(ilm[a:b]))
        left = ilm[max(a - n, 0):a]
        right = ilm[b:b + n]
        steep = [x.size > 0 and np.nanmax(x) > level + drop * h for x in (left, right)]
        if not any(steep):
            continue
        out[a:b] = True
        if steep[0] and a <= w - b and a < side * w:
            out[:a] = True
        elif steep[1] and w - b < a and w - b < side * w:
            out[b:] = True
    return out
