"""Signal and background masks of a low-noise reference b-scan (Manakov 2019, Fig. A.3).

On the reference smoothed by a Gaussian, the retina is the set enclosed by the iso-contour
(marching squares, ``skimage.measure.find_contours``) at the lower 3-class Otsu level; background =
outside it, away from the retina and the image border; signal = the highly reflective parts of the
retina, above a second level (Otsu of the retina's own values). Part of
:mod:`napari_hdcyclegan.metrics`, which re-exports these functions.
"""

from __future__ import annotations

import numpy as np

from .intensity import check_image

__all__ = ["retina_contours", "retina_level", "signal_background_masks"]


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
