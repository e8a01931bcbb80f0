"""ILM and RPE boundaries from a generator feature map (paper Sec. 3.4, Fig. A.10/A.11).

The paper's procedure: multiply a feature map that tracks ILM and RPE with its b-scan, threshold the
product at its mean, median-filter the mask and skeletonize it. This module turns that skeleton into
two lines per b-scan, in eyepy's convention (one float row per A-scan, 0 = top, NaN where missing):

* Before skeletonizing, a thin band at the top and bottom is cleared (zero padding makes feature
  maps respond to the image border), holes enclosed by the mask are filled (speckle leaves dark
  holes inside bright bands, whose skeleton would be a mesh rather than one line along each band)
  and components narrower than 5 % of the width are dropped (speckle grains in the vitreous).
* ``ILM``: the topmost skeleton line; ``RPE``: the outer retinal boundary (RPE outer edge / Bruch's
  membrane, what vendors call RPE or BM), taken from the brightest skeleton line well below the ILM
  (the RPE is the most reflective layer of the retina).
* Each line is cleaned along the A-scans: points further than ``tol`` px from a running median over
  ``window`` A-scans are outliers (NaN), gaps up to ``max_gap`` A-scans are linearly interpolated,
  longer gaps stay NaN.
* Refinement (``refine=True``): the skeleton runs along the *middle* of a bright band, while the
  boundaries are band edges. On the b-scan smoothed by a Gaussian (``sigma``), the ILM moves up to the
  steepest dark-to-bright step (largest positive axial derivative) between the band's upper edge in
  the mask (minus a margin) and the skeleton, and the RPE moves down to the steepest bright-to-dark
  step between the skeleton and the band's lower edge (plus a margin), at most ``max_shift`` px,
  with a parabolic sub-pixel fit. The refined lines are cleaned again.

Channel choice (:func:`choose_channel`) scores every channel of the early stages by the boundary
error against known truth (simulated b-scans) or, without truth, by a label-free score (two long,
smooth lines on strong edges). :func:`calibrate_boundary_channel` runs it on simulated b-scans with a
denoiser and records ``{"stage", "channel", "how", ...}`` as ``config.boundary_channel``.

numpy, scipy and scikit-image only; torch is reached only through a denoiser passed in.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from .intensity import check_image, robust_range, to_unit
from .progress import CancelFn, Cancelled, ProgressFn, check_cancel, report  # noqa: F401 - Cancelled re-exported

BOUNDARY_NAMES: tuple[str, ...] = ("ILM", "RPE")
#: eyepy's layer colours (eyepy.config.layer_colors), as hex RGB.
BOUNDARY_COLORS: dict[str, str] = {"ILM": "#F668C2", "RPE": "#97A431"}
#: Stages whose feature maps stay spatially faithful to the input (paper Sec. 3.4).
EARLY_STAGES: tuple[str, ...] = ("init", "down1", "down2", "down3", "res1")
CSV_HEADER: tuple[str, ...] = ("bscan", "ascan", "ILM", "RPE", "thickness_um")
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
            "grad": np.gradient(ndi.gaussian_filter(unit.astype(np.float64), SMOOTH_SIGMA), axis=0)}


def detect_boundaries(bscan: np.ndarray, feature_map: np.ndarray, *, median_size: int = 5,
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


def iter_detect(volume: np.ndarray, feature_map: Callable[[int, np.ndarray], np.ndarray] | np.ndarray,
                **kwargs: Any) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(index, boundaries)`` per b-scan of a (N, H, W) volume (or one (H, W) b-scan).

    ``feature_map`` is an (N, H, W) array, or a function ``(index, bscan) -> (H, W)`` so that maps
    are computed lazily (e.g. by a denoiser) one b-scan at a time.
    """
    vol = check_image(volume)
    vol = vol[None] if vol.ndim == 2 else vol
    for i, bscan in enumerate(vol):
        fmap = feature_map(i, bscan) if callable(feature_map) else np.asarray(feature_map).reshape(vol.shape)[i]
        yield i, detect_boundaries(bscan, fmap, **kwargs)


def detect_volume(volume: np.ndarray, feature_map: Callable[[int, np.ndarray], np.ndarray] | np.ndarray,
                  *, progress: ProgressFn = None, cancel: CancelFn = None, **kwargs: Any
                  ) -> dict[str, np.ndarray]:
    """ILM and RPE of every b-scan: dict name -> float32 (N, W) (eyepy's layer-height layout)."""
    vol = check_image(volume)
    n = 1 if vol.ndim == 2 else vol.shape[0]
    out = {name: np.full((n, vol.shape[-1]), np.nan, np.float32) for name in BOUNDARY_NAMES}
    for i, lines in iter_detect(vol, feature_map, **kwargs):
        check_cancel(cancel)
        for name in BOUNDARY_NAMES:
            out[name][i] = lines[name]
        report(progress, i + 1, n)
    return out


# --------------------------------------------------------------------------------------------
# Thickness and CSV
# --------------------------------------------------------------------------------------------

def thickness_um(ilm: np.ndarray, rpe: np.ndarray, axial_um_per_px: float | None) -> np.ndarray:
    """Retinal thickness (RPE - ILM) x axial spacing (µm; px when the spacing is None), NaN where
    either boundary is missing."""
    ilm = np.asarray(ilm, dtype=np.float64)
    rpe = np.asarray(rpe, dtype=np.float64)
    if ilm.shape != rpe.shape:
        raise ValueError(f"ILM shape {ilm.shape} does not match RPE shape {rpe.shape}")
    scale = 1.0 if axial_um_per_px is None else float(axial_um_per_px)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"axial_um_per_px must be a positive number, got {axial_um_per_px!r}")
    return ((rpe - ilm) * scale).astype(np.float32)


def _as_2d(boundaries: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """ILM and RPE as (N, W) float arrays, checked to match."""
    missing = [n for n in BOUNDARY_NAMES if n not in boundaries]
    if missing:
        raise ValueError(f"boundaries lack {missing}; expected keys {BOUNDARY_NAMES}")
    ilm = np.atleast_2d(np.asarray(boundaries["ILM"], dtype=np.float64))
    rpe = np.atleast_2d(np.asarray(boundaries["RPE"], dtype=np.float64))
    if ilm.shape != rpe.shape or ilm.ndim != 2:
        raise ValueError(f"ILM {ilm.shape} and RPE {rpe.shape} must both be (W,) or (N, W)")
    return ilm, rpe


def boundary_table(boundaries: Mapping[str, np.ndarray], axial_um_per_px: float | None
                   ) -> np.ndarray:
    """One row per A-scan of each b-scan: structured array with fields ``CSV_HEADER``
    (``thickness_um`` NaN throughout when ``axial_um_per_px`` is None)."""
    ilm, rpe = _as_2d(boundaries)
    n, w = ilm.shape
    table = np.zeros(n * w, dtype=[("bscan", "i4"), ("ascan", "i4"), ("ILM", "f8"), ("RPE", "f8"),
                                   ("thickness_um", "f8")])
    table["bscan"] = np.repeat(np.arange(n), w)
    table["ascan"] = np.tile(np.arange(w), n)
    table["ILM"] = ilm.ravel()
    table["RPE"] = rpe.ravel()
    # the column is in µm by name: unknown spacing gives an empty column, never pixels
    table["thickness_um"] = (np.nan if axial_um_per_px is None
                             else thickness_um(ilm, rpe, axial_um_per_px).ravel())
    return table


def _fmt(value: float) -> str:
    """CSV cell: empty for NaN, else up to 3 decimals."""
    return "" if not np.isfinite(value) else f"{value:.3f}".rstrip("0").rstrip(".")


def write_boundaries_csv(path: str | os.PathLike, boundaries: Mapping[str, np.ndarray],
                         axial_um_per_px: float | None) -> Path:
    """Write ``bscan,ascan,ILM,RPE,thickness_um`` (rows from the top, empty where missing).

    Without an axial spacing (None) the thickness column is left empty.
    """
    table = boundary_table(boundaries, axial_um_per_px)
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for row in table:
            writer.writerow([int(row["bscan"]), int(row["ascan"]), _fmt(row["ILM"]), _fmt(row["RPE"]),
                             _fmt(row["thickness_um"])])
    return path


def read_boundaries_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a CSV written by :func:`write_boundaries_csv` back to ``{"ILM", "RPE", "thickness_um"}``
    arrays of shape (N, W)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != CSV_HEADER:
        raise ValueError(f"{path}: not a boundaries CSV (header must be {','.join(CSV_HEADER)})")
    body = rows[1:]
    n = max((int(r[0]) for r in body), default=-1) + 1
    w = max((int(r[1]) for r in body), default=-1) + 1
    out = {k: np.full((n, w), np.nan) for k in CSV_HEADER[2:]}
    for r in body:
        for k, v in zip(CSV_HEADER[2:], r[2:]):
            out[k][int(r[0]), int(r[1])] = float(v) if v else np.nan
    return out


# --------------------------------------------------------------------------------------------
# Errors and channel choice
# --------------------------------------------------------------------------------------------

def boundary_errors(found: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray]
                    ) -> dict[str, float]:
    """Mean absolute error (px) per boundary over A-scans where the truth is known and the
    detection is not missing, plus ``<name>_coverage`` (fraction of those A-scans detected)."""
    out: dict[str, float] = {}
    for name in BOUNDARY_NAMES:
        f = np.asarray(found[name], dtype=np.float64)
        t = np.asarray(truth[name], dtype=np.float64)
        if f.shape != t.shape:
            raise ValueError(f"{name}: detected shape {f.shape} does not match truth shape {t.shape}")
        known = np.isfinite(t)
        both = known & np.isfinite(f)
        out[name] = float(np.mean(np.abs(f[both] - t[both]))) if both.any() else float("nan")
        out[f"{name}_coverage"] = float(both.sum() / known.sum()) if known.any() else float("nan")
    return out


def supervised_score(found: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                     miss_px: float = 20.0) -> float:
    """Lower is better: mean of ILM and RPE errors, each missing A-scan counted as ``miss_px``."""
    errs = boundary_errors(found, truth)
    total = 0.0
    for name in BOUNDARY_NAMES:
        cov = errs[f"{name}_coverage"]
        if not np.isfinite(cov) or cov == 0:
            total += miss_px
        else:
            total += cov * min(errs[name], miss_px) + (1 - cov) * miss_px
    return total / len(BOUNDARY_NAMES)


def label_free_score(found: Mapping[str, np.ndarray], bscan: np.ndarray,
                     grad: np.ndarray | None = None) -> float:
    """Higher is better, no truth needed: coverage x edge contrast / (1 + roughness).

    Coverage = fraction of A-scans with both lines; edge contrast = mean dark-to-bright step at the
    ILM plus bright-to-dark step at the RPE on the smoothed b-scan ([0, 1] units per px);
    roughness = median absolute second difference of both lines and of their distance (px).
    """
    ilm = np.asarray(found["ILM"], dtype=np.float64)
    rpe = np.asarray(found["RPE"], dtype=np.float64)
    both = np.isfinite(ilm) & np.isfinite(rpe)
    if both.sum() < 3:
        return 0.0
    grad = axial_gradient(bscan) if grad is None else grad
    cols = np.flatnonzero(both)
    h = grad.shape[0]
    g_ilm = grad[np.clip(np.rint(ilm[cols]).astype(int), 0, h - 1), cols]
    g_rpe = -grad[np.clip(np.rint(rpe[cols]).astype(int), 0, h - 1), cols]
    contrast = max(float(np.mean(g_ilm) + np.mean(g_rpe)), 0.0)
    rough = np.nanmean([np.nanmedian(np.abs(np.diff(x, 2))) for x in (ilm, rpe, rpe - ilm)])
    return float(both.mean() * contrast / (1.0 + rough))


def _stack(maps: np.ndarray, n: int) -> np.ndarray:
    """Feature maps of one stage as (N, C, H, W)."""
    maps = np.asarray(maps)
    if maps.ndim == 3 and n == 1:
        maps = maps[None]
    if maps.ndim != 4 or maps.shape[0] != n:
        raise ValueError(f"feature maps of shape {maps.shape} do not match {n} b-scan(s); "
                         "expected (C, H, W) for one b-scan or (N, C, H, W)")
    return maps


def choose_channel(feature_maps: Mapping[str, np.ndarray], bscan: np.ndarray,
                   reference_boundaries: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]] | None = None,
                   *, median_size: int = 5, top_k: int = 8, n_screen: int = 1) -> dict[str, Any]:
    """Pick the (stage, channel) whose skeleton best tracks ILM and RPE.

    ``feature_maps``: stage -> (C, H, W) for one b-scan, or (N, C, H, W) for N b-scans ``bscan``
    ((H, W) or (N, H, W)). With ``reference_boundaries`` (dict name -> (W,) or (N, W), or one dict per
    b-scan) every channel is scored by :func:`supervised_score` (mean abs. error, misses penalised);
    without, by :func:`label_free_score`. All channels are screened without edge refinement on the
    first ``n_screen`` b-scans; the best ``top_k`` are rescored with refinement on all b-scans.
    Returns ``{"stage", "channel", "score", "how", "ranking"}`` (score: px, or label-free).
    """
    vol = check_image(bscan)
    vol = vol[None] if vol.ndim == 2 else vol
    n = vol.shape[0]
    refs: list[Mapping[str, np.ndarray]] | None = None
    if reference_boundaries is not None:
        if isinstance(reference_boundaries, Mapping):
            refs = [{k: np.atleast_2d(np.asarray(reference_boundaries[k]))[i] for k in BOUNDARY_NAMES}
                    for i in range(n)]
        else:
            refs = list(reference_boundaries)
        if len(refs) != n:
            raise ValueError(f"{len(refs)} reference boundaries for {n} b-scan(s)")
    if not feature_maps:
        raise ValueError("no feature maps to choose from")
    stacks = {stage: _stack(maps, n) for stage, maps in feature_maps.items()}
    preps = [prepare_bscan(b) for b in vol]

    def score(stage: str, ch: int, refine: bool, count: int = n) -> float:
        vals = []
        for i in range(count):
            found = detect_boundaries(vol[i], stacks[stage][i, ch], median_size=median_size,
                                      refine=refine, prepared=preps[i])
            vals.append(supervised_score(found, refs[i]) if refs is not None
                        else -label_free_score(found, vol[i], preps[i]["grad"]))
        return float(np.mean(vals))  # lower is better in both modes

    count = min(max(int(n_screen), 1), n)
    screened = sorted((score(s, c, False, count), s, c) for s in stacks for c in range(stacks[s].shape[1]))
    final = sorted((score(s, c, True), s, c) for _, s, c in screened[:max(int(top_k), 1)])
    best, stage, ch = final[0]
    how = ("min. mean abs. error vs reference ILM/RPE" if refs is not None
           else "max. label-free score (coverage x edge contrast / roughness)")
    return {"stage": stage, "channel": int(ch), "score": float(best if refs is not None else -best),
            "how": f"{how} over {n} b-scan(s), {len(screened)} channels of {list(stacks)}",
            "ranking": [(s, int(c), float(v)) for v, s, c in final]}


def calibrate_boundary_channel(denoiser: Any, n: int = 4, seed: int = 0, *,
                               stages: Sequence[str] = EARLY_STAGES,
                               shape: tuple[int, int] = (496, 512),
                               model_dir: str | os.PathLike | None = None,
                               progress: ProgressFn = None, cancel: CancelFn = None) -> dict[str, Any]:
    """Choose the boundary channel of ``denoiser`` on ``n`` simulated b-scans with known ILM/RPE.

    Each simulated HN b-scan is denoised when the model is trained (the b-scan side of the product;
    an untrained model's output is noise, so the raw HN b-scan is used) and its feature maps of
    ``stages`` are scored against the simulator's truth by :func:`choose_channel`. The choice is set
    on ``denoiser.config.boundary_channel``; with ``model_dir`` it is also written into that model's
    ``config.json`` (never do that for a shipped, read-only model).
    """
    from .simulate import simulate_bscan

    available = denoiser.stage_channels()
    stages = [s for s in stages if s in available]
    if not stages:
        raise ValueError(f"none of the stages {list(EARLY_STAGES)} exist in this model ({list(available)})")
    bscans, maps, refs = [], {s: [] for s in stages}, []
    total = n * (len(stages) + 1) + 1
    for i in range(n):
        sim = simulate_bscan(seed=seed + i, shape=shape)
        check_cancel(cancel)
        bscans.append(np.asarray(denoiser.denoise(sim.hn) if denoiser.trained else sim.hn, dtype=np.float32))
        refs.append({k: np.asarray(sim.boundaries[k], dtype=np.float64) for k in BOUNDARY_NAMES})
        for j, stage in enumerate(stages):
            check_cancel(cancel)
            maps[stage].append(np.asarray(denoiser.feature_maps(sim.hn, stage), dtype=np.float32))
            report(progress, i * (len(stages) + 1) + j + 2, total)
    choice = choose_channel({s: np.stack(m) for s, m in maps.items()}, np.stack(bscans), refs)
    choice = {"stage": choice["stage"], "channel": choice["channel"],
              "how": f"calibrate_boundary_channel(n={n}, seed={seed}, shape={list(shape)}): {choice['how']}",
              "score_px": round(choice["score"], 3)}
    denoiser.config.boundary_channel = choice
    if model_dir is not None:
        write_boundary_channel(model_dir, choice)
    report(progress, total, total)
    return choice


def write_boundary_channel(model_dir: str | os.PathLike, choice: Mapping[str, Any]) -> Path:
    """Store ``choice`` as ``boundary_channel`` in a model directory's ``config.json`` (atomic)."""
    path = Path(model_dir) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read model config ({exc})") from exc
    data["boundary_channel"] = dict(choice)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def boundary_channel(config: Any) -> tuple[str, int] | None:
    """``(stage, channel)`` recorded in a model config (``ModelConfig`` or dict), or None."""
    bc = getattr(config, "boundary_channel", None) if not isinstance(config, Mapping) else config.get("boundary_channel")
    if not bc or "stage" not in bc or "channel" not in bc:
        return None
    return str(bc["stage"]), int(bc["channel"])


# --------------------------------------------------------------------------------------------
# With a denoiser
# --------------------------------------------------------------------------------------------

def iter_model_boundaries(data: np.ndarray, denoiser: Any, stage: str, channel: int, *,
                          use_denoised: bool | None = None, **kwargs: Any
                          ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(index, {"ILM", "RPE"})`` per b-scan of ``data`` using ``denoiser``'s feature map
    ``(stage, channel)``. The b-scan side of the product (and of the edge refinement) is the
    denoised b-scan when ``use_denoised`` (default: when the model is trained), else the input."""
    use_denoised = bool(denoiser.trained) if use_denoised is None else bool(use_denoised)
    vol = check_image(data)
    vol = vol[None] if vol.ndim == 2 else vol
    for i, raw in enumerate(vol):
        fmap = np.asarray(denoiser.feature_maps(raw, stage, [int(channel)]), dtype=np.float32)[0]
        bscan = np.asarray(denoiser.denoise(raw), dtype=np.float32) if use_denoised else raw
        yield i, detect_boundaries(bscan, fmap, **kwargs)


def model_boundaries(data: np.ndarray, denoiser: Any, stage: str | None = None,
                     channel: int | None = None, *, use_denoised: bool | None = None,
                     progress: ProgressFn = None, cancel: CancelFn = None, **kwargs: Any
                     ) -> dict[str, np.ndarray]:
    """ILM/RPE (N, W) for a b-scan or volume with a denoiser (what the CLI calls).

    Without ``stage``/``channel`` the model config's ``boundary_channel`` is used, or calibrated on
    simulated b-scans (in memory only) when the config has none.
    """
    if stage is None or channel is None:
        chosen = boundary_channel(denoiser.config) or (
            lambda c: (c["stage"], c["channel"]))(calibrate_boundary_channel(denoiser, cancel=cancel))
        stage = chosen[0] if stage is None else stage
        channel = chosen[1] if channel is None else channel
    vol = check_image(data)
    n = 1 if vol.ndim == 2 else vol.shape[0]
    out = {name: np.full((n, vol.shape[-1]), np.nan, np.float32) for name in BOUNDARY_NAMES}
    for i, lines in iter_model_boundaries(vol, denoiser, stage, channel, use_denoised=use_denoised, **kwargs):
        check_cancel(cancel)
        for name in BOUNDARY_NAMES:
            out[name][i] = lines[name]
        report(progress, i + 1, n)
    return out
