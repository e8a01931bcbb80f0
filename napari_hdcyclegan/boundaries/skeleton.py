"""Stage one: the paper's skeleton (Sec. 3.4, Fig. A.10/A.11) as two raw lines per b-scan.

Multiply a feature map that tracks ILM and RPE with its b-scan, threshold the product at its mean,
median-filter the mask and skeletonize it. Before skeletonizing, a thin band at the top and bottom is
cleared (zero padding makes feature maps respond to the image border), enclosed holes are filled and
components narrower than 5 % of the width are dropped. ``ILM`` is the topmost skeleton line, ``RPE``
the brightest skeleton line well below it. Lines are cleaned along the A-scans (running-median
outliers to NaN, short gaps interpolated) and, with ``refine=True``, moved from the band middles to
the steepest edge of their band (:func:`refine_to_edges`). :mod:`.paths` refines these further.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from ..intensity import check_image, robust_range, to_unit

#: Gaussian sigma (axial, lateral) in px of the smoothing before edge refinement.
SMOOTH_SIGMA: tuple[float, float] = (1.5, 2.0)


# --------------------------------------------------------------------------------------------
# Skeleton
# --------------------------------------------------------------------------------------------

def _unit(image: np.ndarray) -> np.ndarray:
    """Robust [0, 1] float32 version of one b-scan (any dtype/range)."""
    lo, hi = robust_range(image)
    return to_unit(image, lo, hi)


def skeleton_mask(bscan: np.ndarray, feature_map: np.ndarray, median_size: int = 5, *,
                  unit: np.ndarray | None = None, min_extent: float = 0.05
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The paper's mask (feature map x b-scan > its mean, median-filtered) and its skeleton.

    ``unit`` is the b-scan already mapped to [0, 1] (saves the percentiles when called often).
    """
    bscan = check_image(bscan, (2,))
    fmap = check_image(feature_map, (2,))
    if fmap.shape != bscan.shape:
        raise ValueError(f"feature map shape {fmap.shape} does not match b-scan shape {bscan.shape}")
    unit = _unit(bscan) if unit is None else unit
    product = unit * np.nan_to_num(fmap.astype(np.float32), nan=0.0)
    mask = product > product.mean()
    if median_size and median_size > 1:
        # The median of a binary image is a majority vote: a box mean > 1/2, much faster than
        # a rank filter and identical for odd sizes.
        mask = ndi.uniform_filter(mask.astype(np.float32), size=int(median_size)) > 0.5
    # Zero "same" padding makes the first and last rows of a feature map respond to the image
    # border, not to tissue: drop a thin border band.
    border = max(3, mask.shape[0] // 100)
    mask[:border] = mask[-border:] = False
    # Speckle leaves dark holes inside bright bands; their skeleton would be a mesh around every
    # hole instead of one line along the band. Filling enclosed holes keeps the band outlines.
    mask = ndi.binary_fill_holes(mask)
    # Bright speckle grains in the vitreous give short isolated blobs, boundaries are long:
    # keep components spanning at least ``min_extent`` of the width.
    labels, n = ndi.label(mask)
    if n:
        spans = np.array([sl[1].stop - sl[1].start for sl in ndi.find_objects(labels)])
        keep = np.r_[False, spans >= max(5, int(min_extent * mask.shape[1]))]
        mask = keep[labels]
    return mask, skeletonize(mask)


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------

def running_nanmedian(line: np.ndarray, window: int) -> np.ndarray:
    """Median over a centred window of ``window`` A-scans, ignoring NaN (NaN if all are NaN)."""
    line = np.asarray(line, dtype=np.float64)
    half = max(int(window) // 2, 0)
    padded = np.pad(line, half, constant_values=np.nan)
    views = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    out = np.full(line.shape, np.nan)
    ok = np.isfinite(views).any(axis=1)
    if ok.any():
        out[ok] = np.nanmedian(views[ok], axis=1)
    return out


def fill_gaps(line: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate interior NaN runs of at most ``max_gap`` A-scans; others stay NaN."""
    line = np.asarray(line, dtype=np.float64).copy()
    good = np.isfinite(line)
    if good.sum() < 2 or max_gap <= 0:
        return line
    idx = np.flatnonzero(good)
    interp = np.interp(np.arange(line.size), idx, line[idx])
    labels, n = ndi.label(~good)
    for run in ndi.find_objects(labels):
        start, stop = run[0].start, run[0].stop
        if start > 0 and stop < line.size and stop - start <= max_gap:
            line[start:stop] = interp[start:stop]
    return line


def clean_line(line: np.ndarray, window: int = 15, tol: float = 6.0, max_gap: int = 10,
               min_run: int = 8) -> np.ndarray:
    """Reject points off a running median by more than ``tol`` px, drop runs shorter than
    ``min_run`` A-scans (isolated fragments), then fill gaps up to ``max_gap`` A-scans."""
    line = np.asarray(line, dtype=np.float64).copy()
    if not np.isfinite(line).any():
        return line
    med = running_nanmedian(line, window)
    with np.errstate(invalid="ignore"):
        line[~(np.abs(line - med) <= tol)] = np.nan
    labels, _ = ndi.label(np.isfinite(line))
    for run in ndi.find_objects(labels):
        if run[0].stop - run[0].start < min_run:
            line[run] = np.nan
    return fill_gaps(line, max_gap)


def skeleton_lines(skeleton: np.ndarray, weight: np.ndarray, min_separation: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Raw ILM and RPE rows per A-scan from a skeleton: ILM = topmost skeleton pixel; RPE = the
    skeleton pixel with the largest ``weight`` at least ``min_separation`` rows below the ILM."""
    h, w = skeleton.shape
    rows = np.arange(h)[:, None]
    has = skeleton.any(axis=0)
    ilm = np.where(has, np.argmax(skeleton, axis=0), np.nan).astype(np.float64)
    below = skeleton & (rows >= np.nan_to_num(ilm, nan=h)[None, :] + min_separation)
    score = np.where(below, weight, -np.inf)
    rpe = np.where(below.any(axis=0), np.argmax(score, axis=0), np.nan).astype(np.float64)
    return ilm, rpe


def _subpixel(values: np.ndarray, i: int) -> float:
    """Vertex offset (-0.5..0.5) of the parabola through ``values[i-1:i+2]``."""
    if i <= 0 or i >= values.size - 1:
        return 0.0
    a, b, c = values[i - 1], values[i], values[i + 1]
    denom = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom != 0 else 0.0


def axial_gradient(bscan: np.ndarray, sigma: tuple[float, float] = SMOOTH_SIGMA) -> np.ndarray:
    """Axial derivative of the Gaussian-smoothed [0, 1] b-scan (> 0 where it brightens downwards)."""
    return np.gradient(ndi.gaussian_filter(_unit(bscan).astype(np.float64), sigma), axis=0)


def refine_to_edges(ilm: np.ndarray, rpe: np.ndarray, grad: np.ndarray, mask: np.ndarray,
                    margin: int = 4, max_shift: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Move ILM up to the steepest dark-to-bright step and RPE down to the steepest bright-to-dark
    step of ``grad`` (:func:`axial_gradient`), searching from the skeleton point to the edge of its
    band in ``mask`` plus ``margin`` px, at most ``max_shift`` px (default: a sixth of the height,
    enough for the midline of a whole-retina band)."""
    h = grad.shape[0]
    max_shift = max(h // 6, 20) if max_shift is None else int(max_shift)
    out_ilm, out_rpe = ilm.copy(), rpe.copy()
    for col in np.flatnonzero(np.isfinite(ilm)):
        s = int(ilm[col])
        edge = s
        while edge > 0 and mask[edge - 1, col] and s - edge < max_shift:
            edge -= 1
        lo = max(edge - margin, 0, s - max_shift)
        g = grad[lo:s + 1, col]
        i = int(np.argmax(g))
        out_ilm[col] = lo + i + _subpixel(g, i)
    for col in np.flatnonzero(np.isfinite(rpe)):
        s = int(rpe[col])
        edge = s
        while edge < h - 1 and mask[edge + 1, col] and edge - s < max_shift:
            edge += 1
        hi = min(edge + margin, h - 1, s + max_shift)
        g = -grad[s:hi + 1, col]
        i = int(np.argmax(g))
        out_rpe[col] = s + i + _subpixel(g, i)
    return out_ilm, out_rpe


def prepare_bscan(bscan: np.ndarray) -> dict[str, np.ndarray]:
    """What :func:`detect_boundaries` derives from the b-scan alone ([0, 1] image, smoothed image
    as RPE weight, axial gradient); compute once when trying many feature maps on one b-scan."""
    bscan = check_image(bscan, (2,))
    unit = _unit(bscan)
    return {"unit": unit, "weight": ndi.gaussian_filter(unit, 1.5),
            "grad": np.gradient(ndi.gaussian_filter(unit.astype(np.float32), SMOOTH_SIGMA), axis=0)}


def skeleton_boundaries(bscan: np.ndarray, feature_map: np.ndarray, *, median_size: int = 5,
                      refine: bool = True, min_separation: float | None = None,
                      tol: float | None = None, max_gap: int | None = None,
                      prepared: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """ILM and RPE rows (float32, (W,), 0 = top, NaN where missing) of one b-scan.

    ``bscan``: (H, W) any dtype/range (display domain: log-transform linear vendor data first);
    ``feature_map``: (H, W), e.g. ``Denoiser.feature_maps(bscan, stage, [channel])[0]``.
    ``min_separation`` (rows between ILM and RPE candidates), ``tol`` (outlier distance) and
    ``max_gap`` (A-scans interpolated) default to fractions of the b-scan size; ``prepared`` is
    :func:`prepare_bscan` of this b-scan.
    """
    bscan = check_image(bscan, (2,))
    h, w = bscan.shape
    prep = prepare_bscan(bscan) if prepared is None else prepared
    min_separation = max(3.0, 0.02 * h) if min_separation is None else float(min_separation)
    tol = max(3.0, 0.012 * h) if tol is None else float(tol)
    max_gap = max(3, w // 50) if max_gap is None else int(max_gap)
    window = max(7, (w // 35) | 1)
    mask, skel = skeleton_mask(bscan, feature_map, median_size, unit=prep["unit"])
    ilm, rpe = skeleton_lines(skel, prep["weight"], min_separation)
    if refine:
        # Refine the raw skeleton points first: spurs of the skeleton scatter the raw points
        # inside a band, but every point of a band walks to the same band edge.
        ilm, rpe = refine_to_edges(ilm, rpe, prep["grad"], mask)
    ilm = clean_line(ilm, window, tol, max_gap)
    rpe = clean_line(rpe, window, tol, max_gap)
    with np.errstate(invalid="ignore"):
        bad = rpe <= ilm
    rpe[bad] = np.nan
    return {"ILM": ilm.astype(np.float32), "RPE": rpe.astype(np.float32)}

