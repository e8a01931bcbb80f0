"""Classical OCT denoising baselines (BM3D, wavelet, NL-means, bilateral, median) with one signature.

Every function is ``f(image, *, progress=None, cancel=None, **params) -> array`` of the same shape,
dtype and intensity range as ``image``: a 2D b-scan or a 3D volume (b-scans on axis 0), processed
slice by slice. Internally each image is mapped linearly to [0, 1] float (min/max of the whole input
via :mod:`napari_hdcyclegan.intensity`; lossless for uint8, and no clipping of bright RPE speckle as
percentiles would) and mapped back. Work on display-domain (log) data: speckle is multiplicative and
becomes roughly additive after the log, which is what these filters assume.

Noise level: by default ``sigma = estimate_sigma(b-scan in [0, 1]) x multiplier``, estimated per
b-scan. ``skimage.restoration.estimate_sigma`` assumes white noise; OCT speckle is correlated
(~2 px axially), so the raw estimate under-smooths badly and each method carries a multiplier tuned
on the Duke train+val pairs (never the S06-S09 test pairs); see the constants below and
``training/tune_baselines.py``. Pass ``sigma=`` (in [0, 1] units) or the method's own parameter to
override.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import InputError
from .intensity import check_image, from_unit, robust_range, to_unit
from .progress import CancelFn, ProgressFn, Steps, drive, offset

#: BM3D ``sigma_psd = BM3D_SIGMA_SCALE x estimate_sigma``. docs/oct_notes.md: k = 1 / 1.5 / 2 / 3
#: on S01, S03, S05 (train/val pairs; PSNR 25.98 / 26.70 / 26.83 / 26.93 dB, SSIM 0.593 / 0.683 /
#: 0.688 / 0.690): flat from 2 to 3, so 2.5. Re-check with ``python -m training.tune_baselines
#: --methods bm3d`` (about 15 s per b-scan per value on one core).
BM3D_SIGMA_SCALE = 2.5
#: NL-means ``h = NLMEANS_H_SCALE x sigma`` (patch 5, distance 6, fast mode). Train+val grid
#: k = 0.8 / 1 / 1.5 / 2 / 3: PSNR 29.05 / 29.43 / 29.49 / 29.26 / 28.92 dB, SSIM best at 1.5 (0.687).
NLMEANS_H_SCALE = 1.5
#: Wavelet BayesShrink (db2, soft) ``sigma = WAVELET_SIGMA_SCALE x estimate_sigma``. Train+val grid
#: k = 1 / 1.5 / 2 / 3: PSNR 27.35 / 29.17 / 28.67 / 28.15 dB, SSIM 0.532 / 0.681 / 0.673 / 0.666.
WAVELET_SIGMA_SCALE = 1.5
#: Bilateral ``sigma_color = BILATERAL_COLOR_SCALE x sigma`` (sigma_spatial 2 px). Train+val grid
#: k = 2 / 3 / 4 / 6: PSNR 26.27 / 27.35 / 27.41 / 27.24 dB, SSIM 0.469 / 0.582 / 0.608 / 0.610.
BILATERAL_COLOR_SCALE = 4.0
#: Median footprint (rows, cols). Train+val grid 3 / 5 / 7 / 9: PSNR 23.88 / 26.28 / 27.17 /
#: 27.45 dB, SSIM 0.335 / 0.519 / 0.603 / 0.637 (speckle grain is ~2 px axially, ~1 px laterally).
MEDIAN_SIZE = (9, 9)


class MissingExtraError(ImportError):
    """An optional dependency (extra) of napari-hdcyclegan is not installed."""


def _estimate_sigma(unit: np.ndarray) -> float:
    """White-noise sigma of a [0, 1] b-scan (wavelet MAD estimator of scikit-image)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(unit, channel_axis=None))


def _noise_sigma(unit: np.ndarray, sigma: float | None, scale: float) -> float:
    """``sigma`` if given, else ``scale x`` the estimate; never zero (flat images)."""
    if sigma is not None:
        if not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a finite non-negative number, got {sigma!r}")
        return max(float(sigma), 1e-6)
    return max(scale * _estimate_sigma(unit), 1e-6)


def _gray_bscans(image: np.ndarray) -> np.ndarray:
    """``image`` checked as gray b-scans, refused as the model refuses them: a bool mask, or a colour
    image whose (H, W, 3/4) would be read as H b-scans of W x 3 pixels."""
    arr = check_image(image)
    if arr.dtype == np.bool_:
        raise InputError("a binary (bool) image is a mask, not OCT intensities: nothing to denoise")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and min(arr.shape[:2]) > 4 * arr.shape[-1]:
        raise InputError(f"shape {arr.shape}: a last axis of {arr.shape[-1]} looks like colour channels; "
                         "convert the image to gray b-scans")
    return arr


def iter_per_slice(image: np.ndarray, denoise2d: Callable[[np.ndarray], np.ndarray]) -> Steps[np.ndarray]:
    """Map ``image`` to [0, 1], run ``denoise2d`` on each b-scan, map back to dtype and range;
    non-finite pixels (NaN, inf) are given back unchanged.

    Yields ``(done, total)`` b-scans (first ``(0, total)``) and returns the result, so a napari
    worker can run it directly; :func:`apply_per_slice` is its callback form.
    """
    arr = _gray_bscans(image)
    lo, hi = robust_range(arr, 0.0, 100.0)
    stack = arr[None] if arr.ndim == 2 else arr
    out = np.empty(stack.shape, dtype=np.float32)
    total = stack.shape[0]
    yield 0, total
    for i in range(total):
        unit = to_unit(stack[i], lo, hi)
        out[i] = np.clip(denoise2d(unit), 0.0, 1.0)
        yield i + 1, total
    result = from_unit(out, lo, hi, arr.dtype).reshape(arr.shape)
    missing = ~np.isfinite(arr) if arr.dtype.kind == "f" else None
    if missing is not None and missing.any():  # NaN / inf pixels come back as they were, as the model's do
        result[missing] = arr[missing]
    return result


def apply_per_slice(image: np.ndarray, denoise2d: Callable[[np.ndarray], np.ndarray],
                    progress: ProgressFn = None, cancel: CancelFn = None) -> np.ndarray:
    """:func:`iter_per_slice` with ``progress(done, total)`` and ``cancel()`` checked between b-scans."""
    return drive(iter_per_slice(image, denoise2d), progress, cancel)


def denoise_bm3d(image: np.ndarray, *, progress: ProgressFn = None, cancel: CancelFn = None,
                 sigma: float | None = None, sigma_scale: float = BM3D_SIGMA_SCALE,
                 profile: str = "np") -> np.ndarray:
    """BM3D (Dabov 2007, ``bm3d`` package) with ``sigma_psd = sigma_scale x estimated sigma``."""
    try:
        import bm3d
    except ImportError as exc:
        raise MissingExtraError(
            "BM3D needs the optional 'bm3d' package (free for non-commercial use only): "
            'pip install "napari-hdcyclegan[bm3d]"') from exc

    def run(unit: np.ndarray) -> np.ndarray:
        s = _noise_sigma(unit, sigma, sigma_scale)
        return np.asarray(bm3d.bm3d(unit.astype(np.float64), sigma_psd=s, profile=profile))

    return apply_per_slice(image, run, progress, cancel)


def denoise_wavelet(image: np.ndarray, *, progress: ProgressFn = None, cancel: CancelFn = None,
                    sigma: float | None = None, sigma_scale: float = WAVELET_SIGMA_SCALE,
                    wavelet: str = "db2", mode: str = "soft") -> np.ndarray:
    """Wavelet shrinkage with BayesShrink thresholds (Chang 2000, ``skimage``'s denoise_wavelet)."""
    from skimage.restoration import denoise_wavelet as sk_wavelet

    def run(unit: np.ndarray) -> np.ndarray:
        s = _noise_sigma(unit, sigma, sigma_scale)
        return sk_wavelet(unit, sigma=s, wavelet=wavelet, mode=mode, method="BayesShrink",
                          rescale_sigma=True, channel_axis=None)

    return apply_per_slice(image, run, progress, cancel)


def denoise_nlmeans(image: np.ndarray, *, progress: ProgressFn = None, cancel: CancelFn = None,
                    sigma: float | None = None, h: float | None = None,
                    h_scale: float = NLMEANS_H_SCALE, patch_size: int = 5,
                    patch_distance: int = 6, fast_mode: bool = True) -> np.ndarray:
    """Non-local means (Buades 2005, ``skimage``) with ``h = h_scale x sigma`` unless ``h`` given."""
    from skimage.restoration import denoise_nl_means

    def run(unit: np.ndarray) -> np.ndarray:
        s = _noise_sigma(unit, sigma, 1.0)
        hh = h if h is not None else h_scale * s
        return denoise_nl_means(unit, h=hh, sigma=s, patch_size=patch_size,
                                patch_distance=patch_distance, fast_mode=fast_mode,
                                channel_axis=None)

    return apply_per_slice(image, run, progress, cancel)


def denoise_bilateral(image: np.ndarray, *, progress: ProgressFn = None, cancel: CancelFn = None,
                      sigma: float | None = None, color_scale: float = BILATERAL_COLOR_SCALE,
                      sigma_color: float | None = None, sigma_spatial: float = 2.0) -> np.ndarray:
    """Bilateral filter (Tomasi 1998, ``skimage``); ``sigma_color = color_scale x sigma`` by default."""
    from skimage.restoration import denoise_bilateral as sk_bilateral

    def run(unit: np.ndarray) -> np.ndarray:
        sc = sigma_color if sigma_color is not None else color_scale * _noise_sigma(unit, sigma, 1.0)
        return sk_bilateral(unit.astype(np.float64), sigma_color=sc, sigma_spatial=sigma_spatial,
                            channel_axis=None)

    return apply_per_slice(image, run, progress, cancel)


def denoise_median(image: np.ndarray, *, progress: ProgressFn = None, cancel: CancelFn = None,
                   size: int | tuple[int, int] = MEDIAN_SIZE) -> np.ndarray:
    """Median filter over a ``size`` (rows, cols) window (``scipy.ndimage.median_filter``)."""
    from scipy.ndimage import median_filter

    return apply_per_slice(image, lambda unit: median_filter(unit, size=size, mode="reflect"),
                           progress, cancel)


#: The baselines by key, in the order of the paper's Table 1.
BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "median": denoise_median,
    "wavelet": denoise_wavelet,
    "bilateral": denoise_bilateral,
    "nlmeans": denoise_nlmeans,
    "bm3d": denoise_bm3d,
}


def iter_each_bscan(method: Callable[..., np.ndarray], stack: np.ndarray) -> Steps[np.ndarray]:
    """A baseline on every b-scan of a (N, H, W) ``stack`` on its own (each in its own intensity
    range), so that a b-scan's result does not depend on the others; yields ``(done, total)``."""
    out = np.empty_like(stack)
    total = stack.shape[0]
    yield 0, total
    for i in range(total):
        out[i] = method(stack[i])
        yield i + 1, total
    return out


def iter_comparison(stack: np.ndarray, methods: tuple[str, ...], denoiser: Any = None,
                    levels: tuple[float, float] | None = None) -> Steps[dict[str, Any]]:
    """The model (``denoiser``, optional) and the baselines ``methods`` on every b-scan of a
    (N, H, W) ``stack``, each b-scan on its own (:func:`iter_each_bscan`); the model maps the stack
    by ``levels`` when given (those of the volume it is part of: ``Denoiser.volume_levels``).

    Yields ``(done, total)`` b-scans over all methods (stop iterating to cancel between b-scans)
    and returns ``{"results": {"model" / method: array}, "missing": {method: why}}``: a baseline
    whose optional extra is not installed is reported in "missing", not raised.
    """
    from .engine import iter_denoised

    n = stack.shape[0]
    total = n * (len(methods) + int(denoiser is not None))
    done = 0
    results: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    yield done, total
    if denoiser is not None:
        results["model"] = yield from offset(iter_denoised(denoiser, stack, levels=levels), done, total)
        done += n
    for name in methods:
        try:
            results[name] = yield from offset(iter_each_bscan(BASELINES[name], stack), done, total)
        except MissingExtraError as exc:
            missing[name] = str(exc)
        done += n
    return {"results": results, "missing": missing}
