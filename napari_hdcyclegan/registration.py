"""Registration of a denoised b-scan to its reference: DFT phase correlation on smoothed images,
then a sub-pixel Fourier-domain shift (an all-pass filter: no interpolation smoothing).

Part of :mod:`napari_hdcyclegan.metrics`, which re-exports :func:`register` and :func:`fourier_translate`.
"""

from __future__ import annotations

import numpy as np

from .intensity import check_image

__all__ = ["fourier_translate", "register"]


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
