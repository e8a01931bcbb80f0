"""Mean A-scan profiles around the brightest layer: does a denoiser keep the input's layer shape?

PSNR and SSIM against an averaged reference reward a smooth output even where it flattens a thin
bright line (the IS/OS junction above the RPE, say): the line's position in a single noisy frame is
uncertain, and a regression to the mean blurs it. A denoiser should leave the *local mean* of its
input unchanged; the mean profile across all A-scans, aligned on each A-scan's brightest row, is
nearly noise-free (hundreds of A-scans averaged), so the change a method makes to it measures lost
or invented layer contrast without any reference.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

#: Rows above / below the brightest layer (RPE on macular scans) that the profile spans.
ABOVE, BELOW = 24, 10
#: Smoothing (axial, lateral px) before finding the brightest rows in a noisy input used as its own guide:
#: with little lateral smoothing the row found is partly where the noise peaked, which puts a spike in
#: the input's profile that any denoiser removes (a change counted against it on noisy scans).
NOISY_GUIDE_SIGMA = (2.0, 8.0)


def brightest_rows(image: np.ndarray, sigma: float | tuple[float, float] = 2.0) -> np.ndarray:
    """Row of the brightest smoothed pixel in each A-scan (column) of a 2D b-scan."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"brightest_rows needs a 2D b-scan, got shape {img.shape}")
    return np.argmax(gaussian_filter(img, sigma), axis=0)


def flattened_profile(image: np.ndarray, rows: np.ndarray, above: int = ABOVE, below: int = BELOW
                      ) -> np.ndarray:
    """Mean of ``image`` over the A-scans, each shifted so that its row ``rows[c]`` lines up.

    Returns ``above + below + 1`` values (row ``rows[c] - above`` first); A-scans whose window
    leaves the image are left out; all NaN when none is inside.
    """
    img = np.asarray(image, dtype=np.float64)
    rows = np.asarray(rows, dtype=int)
    if img.ndim != 2 or rows.shape != (img.shape[1],):
        raise ValueError(f"need a 2D image and one row per column, got {img.shape} and {rows.shape}")
    inside = np.flatnonzero((rows - above >= 0) & (rows + below < img.shape[0]))
    if inside.size == 0:
        return np.full(above + below + 1, np.nan)
    offsets = np.arange(-above, below + 1)
    return img[rows[inside][None, :] + offsets[:, None], inside[None, :]].mean(axis=1)


def mean_profile_change(output: np.ndarray, image: np.ndarray, guide: np.ndarray | None = None,
                        above: int = ABOVE, below: int = BELOW) -> float:
    """RMS change a denoiser makes to its input's mean profile around the brightest layer.

    Parameters
    ----------
    output, image : numpy.ndarray
        The denoised b-scan and its noisy input (same 2D shape and units; not registered).
    guide : numpy.ndarray, optional
        Where to find the brightest row per A-scan (a low-noise reference of the same geometry);
        default the input itself, smoothed by :data:`NOISY_GUIDE_SIGMA`.
    above, below : int
        Rows of the profile above and below that row.

    Returns
    -------
    float
        Root mean square of (output profile - input profile) minus its mean, in the images' units:
        a global offset does not count, a flattened or sharpened line does. NaN without a usable
        A-scan.
    """
    out, img = np.asarray(output, dtype=np.float64), np.asarray(image, dtype=np.float64)
    guide_shape = img.shape if guide is None else np.asarray(guide).shape
    if out.shape != img.shape or guide_shape != img.shape:
        raise ValueError(f"output {out.shape}, input {img.shape} and guide {guide_shape} must share a 2D shape")
    rows = brightest_rows(img, NOISY_GUIDE_SIGMA) if guide is None else brightest_rows(guide)
    d = flattened_profile(out, rows, above, below) - flattened_profile(img, rows, above, below)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2))) if np.isfinite(d).all() else float("nan")


#: Smoothing (axial, lateral px) of the residual and the output in :func:`residual_edge_correlation`:
#: enough to average the speckle away, little enough to keep a one-row line along a layer edge.
RESIDUAL_SIGMA = (1.5, 4.0)


def residual_edge_correlation(output: np.ndarray, image: np.ndarray,
                              sigma: tuple[float, float] = RESIDUAL_SIGMA) -> float:
    """Does the residual follow the layer edges? Correlation of its smoothed magnitude with edge strength.

    Parameters
    ----------
    output, image : numpy.ndarray
        The denoised b-scan and its noisy input (same 2D shape and units).
    sigma : tuple of float
        Gaussian smoothing (axial, lateral px) of the residual ``image - output`` and of the output.

    Returns
    -------
    float
        Pearson correlation between ``|smoothed residual|`` and the axial gradient magnitude of the
        smoothed output: about 0 when the residual is noise, positive when the method blurred or
        shifted layer edges (lines along them in the residual). NaN for a flat image.
    """
    out, img = np.asarray(output, dtype=np.float64), np.asarray(image, dtype=np.float64)
    if out.shape != img.shape or out.ndim != 2:
        raise ValueError(f"output {out.shape} and input {img.shape} must share a 2D shape")
    res = np.abs(gaussian_filter(img - out, sigma))
    edges = np.abs(np.gradient(gaussian_filter(out, sigma), axis=0))
    if res.std() == 0 or edges.std() == 0:
        return float("nan")
    return float(np.corrcoef(res.ravel(), edges.ravel())[0, 1])
