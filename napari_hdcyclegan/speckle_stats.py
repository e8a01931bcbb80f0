"""Statistics of an OCT b-scan's speckle, noise floor, layers and texture (numpy, scipy, scikit-image).

All functions take one display-domain (log) b-scan as float in [0, 1] (rows = depth from the top) and
return plain numbers or arrays, so that real and simulated scans are measured the same way.
Speckle autocorrelation is taken on the high-passed image inside
the homogeneous (low-gradient) part of retina and choroid, so that layer edges do not count. Regions
are found without labels: the ILM is the first row of each column above an Otsu threshold of the
smoothed image, the "brightest band" (usually RPE) is each column's maximum below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.filters.rank import entropy
from skimage.morphology import disk

#: Offsets (px, + is deeper) at which :func:`aligned_profile` is summarised.
PROFILE_OFFSETS = (-90, -60, -30, -10, 0, 10, 30, 60)


@dataclass
class Regions:
    """Per-column rows of the ILM and the brightest band (NaN where not found) and the region masks."""

    ilm: np.ndarray
    peak: np.ndarray
    vitreous: np.ndarray
    retina: np.ndarray
    choroid: np.ndarray


def highpass(img: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """``img`` minus its Gaussian blur of ``sigma`` px (float64): speckle without the layer structure."""
    x = np.asarray(img, dtype=np.float64)
    return x - ndimage.gaussian_filter(x, sigma, mode="reflect")


def autocorrelation(img: np.ndarray, lags: tuple[int, ...] = (1, 2, 3), axis: int = 0,
                    mask: np.ndarray | None = None, sigma: float = 4.0) -> np.ndarray:
    """Correlation coefficient of the high-passed image with itself shifted by each lag along ``axis``.

    ``mask`` (bool, same shape) restricts the pixel pairs to those with both ends inside. The high-pass
    biases the estimate low by up to ~0.08 for a speckle grain of 1-1.5 px (the same for every image).
    """
    hp = highpass(img, sigma)
    m = np.ones(hp.shape, bool) if mask is None else np.asarray(mask, bool)
    out = []
    for k in lags:
        a = np.moveaxis(hp, axis, 0)
        ma = np.moveaxis(m, axis, 0)
        both = ma[:-k] & ma[k:]
        x, y = a[:-k][both], a[k:][both]
        out.append(np.corrcoef(x, y)[0, 1] if x.size > 10 else np.nan)
    return np.array(out)


def local_std(img: np.ndarray, size: int = 7) -> np.ndarray:
    """Standard deviation in a ``size`` x ``size`` window around each pixel (float64)."""
    x = np.asarray(img, dtype=np.float64)
    mean = ndimage.uniform_filter(x, size, mode="reflect")
    sq = ndimage.uniform_filter(x * x, size, mode="reflect")
    return np.sqrt(np.clip(sq - mean * mean, 0.0, None))


def local_entropy(img: np.ndarray, radius: int = 4) -> np.ndarray:
    """Shannon entropy (bits) of the 8-bit grey levels in a disk of ``radius`` around each pixel."""
    u8 = np.clip(np.asarray(img, dtype=np.float64) * 255 + 0.5, 0, 255).astype(np.uint8)
    return entropy(u8, disk(radius)).astype(np.float64)


def find_regions(img: np.ndarray, margin: int = 8, choroid_px: tuple[int, int] = (8, 48)) -> Regions:
    """ILM and brightest-band rows per column, and vitreous / retina / choroid masks (see module doc)."""
    x = np.asarray(img, dtype=np.float64)
    h, w = x.shape
    smooth = ndimage.gaussian_filter(x, (3, 6))
    above = smooth > threshold_otsu(smooth)
    rows = np.arange(h)[:, None]
    ilm = np.where(above.any(0), np.argmax(above, axis=0), -1).astype(float)
    below_ilm = rows >= np.where(ilm >= 0, ilm, h)[None, :]
    peak = np.argmax(np.where(below_ilm, smooth, -np.inf), axis=0).astype(float)
    ok = (ilm >= 0) & (peak > ilm + 2 * margin)
    ilm[~ok] = np.nan
    peak[~ok] = np.nan
    top = np.where(ok, ilm, -1)[None, :]
    bot = np.where(ok, peak, -1)[None, :]
    vit = (rows >= 2) & (rows < top - margin)
    retina = (rows >= top + 3) & (rows < bot - margin // 2)
    cho = (rows >= bot + choroid_px[0]) & (rows < bot + choroid_px[1]) & ok[None, :]
    return Regions(ilm, peak, vit, retina, cho)


def homogeneous(img: np.ndarray, mask: np.ndarray, quantile: float = 30.0) -> np.ndarray:
    """The part of ``mask`` where the smoothed image's gradient is below its ``quantile`` (no layer edges)."""
    s = ndimage.gaussian_filter(np.asarray(img, dtype=np.float64), 3.0)
    g = np.hypot(*np.gradient(s))
    m = np.asarray(mask, bool)
    return m & (g < np.percentile(g[m], quantile)) if m.sum() > 100 else m


def aligned_profile(img: np.ndarray, peak: np.ndarray, offsets: tuple[int, ...] = PROFILE_OFFSETS) -> np.ndarray:
    """Mean A-scan of the smoothed image at ``offsets`` rows from each column's brightest band (NaN off-image)."""
    x = ndimage.gaussian_filter1d(np.asarray(img, dtype=np.float64), 1.0, axis=0)
    h, w = x.shape
    out = []
    for d in offsets:
        r = peak + d
        ok = np.isfinite(r) & (r >= 0) & (r < h)
        out.append(x[r[ok].astype(int), np.flatnonzero(ok)].mean() if ok.any() else np.nan)
    return np.array(out)


def _masked(values: np.ndarray, mask: np.ndarray, fn) -> float:
    """``fn`` of ``values[mask]``, NaN when the mask holds fewer than 50 pixels."""
    v = values[mask]
    return float(fn(v)) if v.size >= 50 else float("nan")


def bscan_stats(img: np.ndarray, lags: tuple[int, ...] = (1, 2, 3)) -> dict[str, float]:
    """All statistics of one display-domain b-scan as a flat ``{name: value}`` dict (see module doc)."""
    x = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    reg = find_regions(x)
    hp_std = local_std(highpass(x), 7)
    lstd = local_std(x, 7)
    ent = local_entropy(x)
    out = {
        "vitreous_mean": _masked(x, reg.vitreous, np.mean),
        "vitreous_p05": _masked(x, reg.vitreous, lambda v: np.percentile(v, 5)),
        "vitreous_p50": _masked(x, reg.vitreous, np.median),
        "vitreous_p95": _masked(x, reg.vitreous, lambda v: np.percentile(v, 95)),
        "vitreous_noise": _masked(hp_std, reg.vitreous, np.median),
        "retina_noise": _masked(hp_std, reg.retina, np.median),
        "retina_mean": _masked(x, reg.retina, np.mean),
        "retina_local_std": _masked(lstd, reg.retina, np.median),
        "retina_entropy": _masked(ent, reg.retina, np.mean),
        "choroid_local_std": _masked(lstd, reg.choroid, np.median),
        "choroid_entropy": _masked(ent, reg.choroid, np.mean),
        "retina_px": float(np.nanmedian(reg.peak - reg.ilm)) if np.isfinite(reg.peak).any() else float("nan"),
    }
    sig = homogeneous(x, reg.retina | reg.choroid)  # speckle, not layer edges
    for name, axis in (("axial", 0), ("lateral", 1)):
        for k, v in zip(lags, autocorrelation(x, lags, axis=axis, mask=sig)):
            out[f"acf_{name}_{k}"] = float(v)
    for d, v in zip(PROFILE_OFFSETS, aligned_profile(x, reg.peak)):
        out[f"profile_{d:+d}"] = float(v)
    return out
