"""Image-quality metrics for OCT denoising, registration to a reference, and signal/background masks.

Registration lives in :mod:`napari_hdcyclegan.registration`, the masks in :mod:`napari_hdcyclegan.masks`
and the no-reference measures of one noisy b-scan (split PSNR, noise texture) in
:mod:`napari_hdcyclegan.noise_measures`; all are re-exported here.

Settings (stated because papers differ):

- PSNR = 10 log10(data_range^2 / MSE); ``data_range`` defaults to the reference's span of values as the
  denoiser maps them (:func:`default_data_range`: 255 for uint8, the bit depth the values use for other
  integers, 1.0 for float images in [0, 1], else their own range); identical images give ``inf``.
- SSIM as Wang et al. 2004: Gaussian weights (sigma 1.5), population covariance
  (``use_sample_covariance=False``), K1 = 0.01, K2 = 0.03, same ``data_range`` as PSNR.
- MSR = mean / std over each signal region, averaged over regions; ENL = mean^2 / variance.
- CNR (linear) = |mu_s - mu_b| / sqrt(sigma_s^2 + sigma_b^2), averaged over signal regions;
  ``CNR_dB`` = 10 log10 of that. (Pizurica's variant with 0.5 (sigma_s^2 + sigma_b^2) is not used.)
- Signal regions = connected components of the signal mask with at least ``min_region`` pixels.
- Masks (Manakov 2019, Fig. A.3): on the LN reference smoothed by a Gaussian, the retina is the set
  enclosed by the iso-contour (marching squares, ``skimage.measure.find_contours``) at the lower
  3-class Otsu level; background = outside it, away from the retina and the image border; signal =
  the highly reflective parts of the retina, above a second level (Otsu of the retina's own values).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .intensity import check_image, integer_range
from .masks import retina_contours, retina_level, signal_background_masks  # noqa: F401 - re-exported
from .noise_measures import (  # noqa: F401 - re-exported
    axial_noise_correlation,
    column_halves,
    lateral_noise_ratio,
    offset_free_psnr,
    split_psnr,
)
from .registration import fourier_translate, register  # noqa: F401 - fourier_translate re-exported

#: Default minimum size (pixels) of a connected signal region counted by MSR and CNR.
MIN_REGION = 50


def default_data_range(image: np.ndarray) -> float:
    """The span of values ``image``'s data can take, as the denoiser would map it on its own (one
    b-scan of 12-bit data whose values stay below 1024 has 10 bits: pass the volume's range instead).

    255 for uint8 (1 for bool); for other integers the levels of
    :func:`napari_hdcyclegan.intensity.integer_range` (12-bit values in uint16: 4095, not 65535;
    negative values: the image's own range); 1.0 for float images within [0, 1], else the float
    image's own range (max - min of its finite values).

    Parameters
    ----------
    image : numpy.ndarray

    Returns
    -------
    float
    """
    arr = np.asarray(image)
    if arr.dtype == np.bool_ or arr.dtype == np.uint8:
        return 1.0 if arr.dtype == np.bool_ else 255.0
    finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
    if finite.size == 0:
        return 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if arr.dtype.kind in "iu":
        levels = integer_range(lo, hi, arr.dtype)
        return levels[1] - levels[0]
    return 1.0 if lo >= 0.0 and hi <= 1.0 or hi <= lo else hi - lo


def _pair(test: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 after checking they are 2D/3D and of equal shape."""
    a, b = check_image(test), check_image(reference)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(test: np.ndarray, reference: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images.

    Parameters
    ----------
    test : numpy.ndarray
        The image scored (a denoised b-scan).
    reference : numpy.ndarray
        The reference, same shape.
    data_range : float, optional
        Peak-to-peak range; default :func:`default_data_range` of ``reference``.

    Returns
    -------
    float
    """
    dr = default_data_range(reference) if data_range is None else float(data_range)
    a, b = _pair(test, reference)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(dr**2 / mse))


def ssim(test: np.ndarray, reference: np.ndarray, data_range: float | None = None) -> float:
    """Mean SSIM with Wang 2004 settings (Gaussian sigma 1.5, population covariance).

    Parameters
    ----------
    test : numpy.ndarray
        The image scored (a denoised b-scan).
    reference : numpy.ndarray
        The reference, same shape.
    data_range : float, optional
        Peak-to-peak range; default :func:`default_data_range` of ``reference``.

    Returns
    -------
    float
    """
    from skimage.metrics import structural_similarity

    dr = default_data_range(reference) if data_range is None else float(data_range)
    a, b = _pair(test, reference)
    if min(a.shape) < 11:  # skimage's Gaussian window at sigma 1.5: 2 * int(3.5 * 1.5 + 0.5) + 1 pixels each way
        raise ValueError(f"SSIM needs at least 11 pixels along every axis (Gaussian window, sigma 1.5), "
                         f"got shape {a.shape}")
    return float(structural_similarity(a, b, data_range=dr, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=None))


def _regions(mask: np.ndarray, min_region: int) -> list[np.ndarray]:
    """Boolean masks of the connected components of ``mask`` with >= ``min_region`` pixels."""
    from skimage.measure import label

    mask = np.asarray(mask, dtype=bool)
    labels = label(mask, connectivity=1)
    counts = np.bincount(labels.ravel())
    keep = [i for i in range(1, counts.size) if counts[i] >= min_region]
    if not keep:
        return [mask] if mask.any() else []
    return [labels == i for i in keep]


def _check_mask(image: np.ndarray, mask: np.ndarray, what: str) -> np.ndarray:
    """``mask`` as bool, of the image's shape and non-empty."""
    m = np.asarray(mask, dtype=bool)
    if m.shape != np.shape(image):
        raise ValueError(f"{what} mask shape {m.shape} does not match image shape {np.shape(image)}")
    if not m.any():
        raise ValueError(f"{what} mask is empty")
    return m


def msr(image: np.ndarray, signal: np.ndarray, min_region: int = MIN_REGION) -> float:
    """Mean-to-standard-deviation ratio, averaged over the signal regions.

    Parameters
    ----------
    image : numpy.ndarray
        The image scored.
    signal : numpy.ndarray of bool
        Signal mask; regions smaller than ``min_region`` px are ignored.
    min_region : int
        Smallest connected signal region scored (px).

    Returns
    -------
    float
    """
    img = np.asarray(image, dtype=np.float64)
    regions = _regions(_check_mask(img, signal, "signal"), min_region)
    vals = [img[r].mean() / max(img[r].std(), 1e-12) for r in regions]
    return float(np.mean(vals))


def cnr(image: np.ndarray, signal: np.ndarray, background: np.ndarray,
        min_region: int = MIN_REGION) -> float:
    """Linear contrast-to-noise ratio |mu_s - mu_b| / sqrt(sigma_s^2 + sigma_b^2), region-averaged.

    Parameters
    ----------
    image : numpy.ndarray
        The image scored.
    signal : numpy.ndarray of bool
        Signal mask; regions smaller than ``min_region`` px are ignored.
    background : numpy.ndarray of bool
        Background mask.
    min_region : int
        Smallest connected signal region scored (px).

    Returns
    -------
    float
    """
    img = np.asarray(image, dtype=np.float64)
    bg = img[_check_mask(img, background, "background")]
    mu_b, var_b = bg.mean(), bg.var()
    regions = _regions(_check_mask(img, signal, "signal"), min_region)
    vals = [abs(img[r].mean() - mu_b) / max(np.sqrt(img[r].var() + var_b), 1e-12) for r in regions]
    return float(np.mean(vals))


def cnr_db(image: np.ndarray, signal: np.ndarray, background: np.ndarray,
           min_region: int = MIN_REGION) -> float:
    """CNR in dB: 10 log10 of the linear :func:`cnr`.

    Parameters
    ----------
    image, signal, background, min_region
        As for :func:`cnr`.

    Returns
    -------
    float
        ``-inf`` when the linear CNR is 0.
    """
    value = cnr(image, signal, background, min_region)
    return float(10 * np.log10(value)) if value > 0 else float("-inf")


def enl(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Equivalent number of looks mu^2 / sigma^2 over ``mask`` (a homogeneous region).

    Parameters
    ----------
    image : numpy.ndarray
    mask : numpy.ndarray of bool, optional
        The region; None is the whole image.

    Returns
    -------
    float
        ``inf`` for a constant region.
    """
    img = np.asarray(image, dtype=np.float64)
    vals = img[_check_mask(img, mask, "ENL")] if mask is not None else img.ravel()
    var = vals.var()
    return float("inf") if var == 0 else float(vals.mean() ** 2 / var)


def score_pair(denoised: np.ndarray, reference: np.ndarray,
               masks: tuple[np.ndarray, np.ndarray] | None = None,
               data_range: float | None = None, min_region: int = MIN_REGION) -> dict[str, float]:
    """PSNR, SSIM (vs ``reference``), MSR, CNR, CNR_dB and background ENL (within ``denoised``).

    Parameters
    ----------
    denoised, reference : numpy.ndarray
        2D images of the same shape.
    masks : tuple of numpy.ndarray, optional
        ``(signal, background)``; default :func:`signal_background_masks` of ``reference``.
    data_range : float, optional
        As for :func:`psnr`.
    min_region : int
        As for :func:`msr`.

    Returns
    -------
    dict of str to float
        Keys ``PSNR``, ``SSIM``, ``MSR``, ``CNR``, ``CNR_dB``, ``ENL``.
    """
    signal, background = signal_background_masks(reference) if masks is None else masks
    dr = default_data_range(reference) if data_range is None else float(data_range)
    return {
        "PSNR": psnr(denoised, reference, dr),
        "SSIM": ssim(denoised, reference, dr),
        "MSR": msr(denoised, signal, min_region),
        "CNR": cnr(denoised, signal, background, min_region),
        "CNR_dB": cnr_db(denoised, signal, background, min_region),
        "ENL": enl(denoised, background),
    }


def score_methods(outputs: Mapping[str, np.ndarray], reference: np.ndarray,
                  masks: tuple[np.ndarray, np.ndarray] | None = None,
                  data_range: float | None = None, align: bool = True,
                  max_shift: float = 10.0) -> dict[str, dict[str, float]]:
    """Score every method's 2D output against one reference, masks computed once for the pair.

    With ``align`` each output is first registered to the reference (:func:`register`); the
    accepted shift is reported as ``shift_rows`` / ``shift_cols``.

    Parameters
    ----------
    outputs : mapping of str to numpy.ndarray
        Method name to its 2D output.
    reference : numpy.ndarray
        The reference b-scan.
    masks, data_range
        As for :func:`score_pair`.
    align : bool
        Register each output to the reference first.
    max_shift : float
        As for :func:`register`.

    Returns
    -------
    dict of str to dict
        Per method, the :func:`score_pair` row plus ``shift_rows`` and ``shift_cols``.
    """
    masks = signal_background_masks(reference) if masks is None else masks
    scores: dict[str, dict[str, float]] = {}
    for name, out in outputs.items():
        shift = np.zeros(2)
        if align:
            out, shift = register(out, reference, max_shift=max_shift)
        row = score_pair(out, reference, masks, data_range)
        row["shift_rows"], row["shift_cols"] = float(shift[0]), float(shift[1])
        scores[name] = row
    return scores
