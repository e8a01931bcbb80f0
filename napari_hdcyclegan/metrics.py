"""Image-quality metrics for OCT denoising, registration to a reference, and signal/background masks.

Settings (stated because papers differ):

- PSNR = 10 log10(data_range^2 / MSE); ``data_range`` defaults to 255 for uint8, the dtype maximum
  for other integers and 1.0 for float images in [0, 1]; identical images give ``inf``.
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

from collections.abc import Callable, Mapping

import numpy as np

from .intensity import check_image

#: Default minimum size (pixels) of a connected signal region counted by MSR and CNR.
MIN_REGION = 50


def default_data_range(image: np.ndarray) -> float:
    """255 for uint8, the dtype maximum for other integers, 1.0 for floats (unit images).

    Parameters
    ----------
    image : numpy.ndarray

    Returns
    -------
    float
    """
    dtype = np.asarray(image).dtype
    if dtype == np.bool_:
        return 1.0
    if dtype.kind in "iu":
        return float(np.iinfo(dtype).max)
    return 1.0


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


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two equally shaped arrays."""
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def fourier_translate(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Translate a 2D float image by a sub-pixel ``shift`` (rows, cols) via the DFT shift theorem.

    The image is reflect-padded by the shift (plus 2 px) first so the DFT's wrap-around stays in the
    padding; the edge rows/columns that enter the frame are mirrored copies.

    Parameters
    ----------
    image : numpy.ndarray
        A 2D image.
    shift : numpy.ndarray
        ``(rows, cols)`` in px, fractions allowed.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``image``.
    """
    from scipy.ndimage import fourier_shift

    pad = [int(np.ceil(abs(s))) + 2 for s in shift]
    padded = np.pad(image, [(pad[0], pad[0]), (pad[1], pad[1])], mode="reflect")
    moved = np.fft.ifft2(fourier_shift(np.fft.fft2(padded), shift)).real
    return moved[pad[0]:pad[0] + image.shape[0], pad[1]:pad[1] + image.shape[1]]


def register(moving: np.ndarray, reference: np.ndarray, max_shift: float = 10.0,
             sigma: float = 2.0, upsample: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``moving`` onto ``reference`` (2D) by DFT phase correlation; return (image, shift).

    Raw speckle fools plain phase correlation, so both images are smoothed (Gaussian ``sigma``) and
    Hann-windowed first; a shift larger than ``max_shift`` px (either axis), or one that does not
    raise the normalised cross-correlation of the smoothed images over the central region, is
    rejected (zero shift, image returned unchanged). The accepted sub-pixel shift is applied in
    the Fourier domain (:func:`fourier_translate`): an all-pass filter, so unlike interpolation it
    does not average away noise and flatter a noisy image's PSNR; dtype is kept.

    Parameters
    ----------
    moving, reference : numpy.ndarray
        2D images of the same shape.
    max_shift : float
        Largest accepted shift per axis (px).
    sigma : float
        Gaussian smoothing before the correlation (px).
    upsample : int
        Sub-pixel precision of the shift (1 / ``upsample`` px).

    Returns
    -------
    tuple of numpy.ndarray
        The shifted image and the ``(rows, cols)`` shift (zeros when rejected).
    """
    from scipy.ndimage import gaussian_filter
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    mov = check_image(moving, (2,))
    ref = check_image(reference, (2,))
    if mov.shape != ref.shape:
        raise ValueError(f"cannot register images of different shapes {mov.shape} and {ref.shape}")
    m = gaussian_filter(mov.astype(np.float64), sigma)
    r = gaussian_filter(ref.astype(np.float64), sigma)
    win = window("hann", m.shape)
    shift, _, _ = phase_cross_correlation((r - r.mean()) * win, (m - m.mean()) * win,
                                          upsample_factor=upsample, normalization=None)
    shift = np.asarray(shift, dtype=np.float64)
    zero = np.zeros(2)
    if not np.all(np.isfinite(shift)) or np.any(np.abs(shift) > max_shift) or not shift.any():
        return mov.copy(), zero
    # Compare correlation away from the borders, where the shift repeats edge pixels.
    c = int(np.ceil(max_shift))
    inner = (slice(c, -c or None), slice(c, -c or None)) if min(m.shape) > 4 * c else np.s_[:, :]
    before = _ncc(m[inner], r[inner])
    # Same all-pass translation as applied below: interpolation would smooth the speckle and
    # raise the correlation for any shift.
    after = _ncc(fourier_translate(m, shift)[inner], r[inner])
    if after <= before:
        return mov.copy(), zero
    out = fourier_translate(mov.astype(np.float64), shift)
    if mov.dtype.kind in "iub":
        info = np.iinfo(mov.dtype) if mov.dtype.kind != "b" else None
        out = np.rint(out)
        if info is not None:
            out = np.clip(out, info.min, info.max)
    return out.astype(mov.dtype), shift


def retina_level(smooth: np.ndarray) -> float:
    """Lower of the two 3-class Otsu thresholds (background | retina | bright bands) of ``smooth``.

    Plain Otsu splits dark background from the brightest bands only and leaves the grey inner
    retina outside; the three-class split puts the retina contour at the vitreous/ILM edge.

    Parameters
    ----------
    smooth : numpy.ndarray
        A smoothed 2D reference b-scan.

    Returns
    -------
    float
    """
    from skimage.filters import threshold_multiotsu

    return float(threshold_multiotsu(smooth, classes=3)[0])


def retina_contours(reference: np.ndarray, sigma: float = 4.0,
                    level: float | None = None) -> tuple[list[np.ndarray], float]:
    """Marching-squares contours of the smoothed reference at ``level`` (Otsu by default).

    Parameters
    ----------
    reference : numpy.ndarray
        A 2D reference b-scan.
    sigma : float
        Gaussian smoothing (px).
    level : float, optional
        Contour level; default :func:`retina_level`.

    Returns
    -------
    tuple
        The contours (``(K, 2)`` row/column arrays) and the level used.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.measure import find_contours

    smooth = gaussian_filter(check_image(reference, (2,)).astype(np.float64), sigma)
    lvl = retina_level(smooth) if level is None else float(level)
    return find_contours(smooth, lvl), lvl


def signal_background_masks(reference: np.ndarray, sigma: float = 4.0, level: float | None = None,
                            signal_level: float | None = None, signal_sigma: float = 2.0,
                            margin: int = 10, border: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(signal, background) boolean masks of a 2D LN reference b-scan, as in the paper's Fig. A.3.

    The reference is smoothed (Gaussian ``sigma`` px). The retina is the largest connected region
    enclosed by the iso-contour at ``level`` (default :func:`retina_level`, the lower 3-class Otsu
    threshold), i.e. the region that ``find_contours(smooth, level)`` outlines, holes filled.
    Background = everything else at least ``margin`` px away from the retina and ``border`` px away
    from the image edge. Signal = the parts of the retina above ``signal_level`` (default: Otsu
    threshold of the retina's values) on a lighter smoothing (``signal_sigma`` px, so that thin
    bands do not bleed into their neighbours): the highly reflective bands (RNFL, EZ, RPE).

    Parameters
    ----------
    reference : numpy.ndarray
        A 2D low-noise reference b-scan.
    sigma, level : float
        Smoothing (px) and iso-contour level of the retina.
    signal_level, signal_sigma : float
        Threshold and smoothing (px) of the signal bands.
    margin, border : int
        Background distance from the retina and from the image edge (px).

    Returns
    -------
    tuple of numpy.ndarray
        Boolean ``(signal, background)`` masks, the shape of ``reference``.
    """
    from scipy.ndimage import binary_dilation, binary_fill_holes, gaussian_filter
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    ref = check_image(reference, (2,)).astype(np.float64)
    smooth = gaussian_filter(ref, sigma)
    if np.ptp(smooth) == 0:
        raise ValueError("reference image is constant: no retina to find")
    lvl = retina_level(smooth) if level is None else float(level)
    labels = label(smooth > lvl, connectivity=1)
    if labels.max() == 0:
        raise ValueError(f"no region of the reference lies above the retina level {lvl:.4g}")
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    retina = binary_fill_holes(labels == largest)
    edge = np.zeros_like(retina)
    b = max(int(border), 0)
    edge[b:ref.shape[0] - b, b:ref.shape[1] - b] = True
    near = binary_dilation(retina, iterations=max(int(margin), 0)) if margin > 0 else retina
    background = ~near & edge
    fine = gaussian_filter(ref, signal_sigma) if signal_sigma > 0 else ref
    slvl = float(threshold_otsu(fine[retina])) if signal_level is None else float(signal_level)
    signal = retina & (fine > slvl) & edge
    if not signal.any() or not background.any():
        raise ValueError("could not find both signal and background regions in the reference")
    return signal, background


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


def column_halves(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Even- and odd-column halves of a b-scan, cropped to the same width.

    Parameters
    ----------
    image : numpy.ndarray
        A 2D b-scan, at least 2 columns wide.

    Returns
    -------
    tuple of numpy.ndarray
        Views ``(even, odd)``, each ``W // 2`` columns.
    """
    w = np.shape(image)[1] // 2
    if w < 1:
        raise ValueError(f"a b-scan needs at least 2 columns, got shape {np.shape(image)}")
    return image[:, 0:2 * w:2], image[:, 1:2 * w:2]


def split_psnr(image: np.ndarray, denoise: Callable[[np.ndarray], np.ndarray] | None = None,
               data_range: float = 1.0) -> float:
    """No-reference PSNR (dB) from the two column halves of one noisy b-scan.

    Neighbouring A-scans carry nearly independent speckle, so the even- and odd-column halves are
    two noisy views of almost the same scene. Each half is passed through ``denoise`` (identity when
    None: then the score measures the scan's own noise) and compared with the other raw half, mean
    offset removed; the two directions are averaged.

    Parameters
    ----------
    image : numpy.ndarray
        A 2D noisy b-scan in [0, 1] (or on ``data_range``).
    denoise : callable, optional
        Maps a 2D half to its denoised version.
    data_range : float
        Peak-to-peak range of the PSNR.

    Returns
    -------
    float
        dB.
    """
    even, odd = column_halves(image)
    scores = []
    for a, b in ((even, odd), (odd, even)):
        out = np.asarray(a if denoise is None else denoise(np.ascontiguousarray(a)), dtype=np.float64)
        d = out - np.asarray(b, dtype=np.float64)
        scores.append(10 * np.log10(data_range ** 2 / max(float(np.mean((d - d.mean()) ** 2)), 1e-12)))
    return float(np.mean(scores))
