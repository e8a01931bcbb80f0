"""No-reference measures of one noisy b-scan from its column halves: split PSNR and the noise's texture.

Neighbouring A-scans carry nearly independent speckle on many scanners, so the even- and odd-column
halves of a b-scan are two noisy views of almost the same scene (where they share speckle, as on the
Tian and Willis Spectralis scans, :func:`lateral_noise_ratio` says so). numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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
        dB; pixels where either half is NaN/inf are left out (``inf`` when none is left).
    """
    even, odd = column_halves(image)
    scores = []
    for a, b in ((even, odd), (odd, even)):
        out = np.asarray(a if denoise is None else denoise(np.ascontiguousarray(a)), dtype=np.float64)
        d = out - np.asarray(b, dtype=np.float64)
        d = d[np.isfinite(d)]  # one NaN pixel would make the score NaN
        if d.size == 0:
            return float("inf")
        scores.append(offset_free_psnr(d, data_range))
    return float(np.mean(scores))


def offset_free_psnr(difference: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR (dB) of a difference image with its mean removed: a uniform offset is not counted as error.

    Parameters
    ----------
    difference : numpy.ndarray
        Output minus reference, finite values only.
    data_range : float
        Peak-to-peak range of the PSNR.

    Returns
    -------
    float
        dB (capped where the difference is constant).
    """
    d = np.asarray(difference, dtype=np.float64)
    return float(10 * np.log10(data_range ** 2 / max(float(np.mean((d - d.mean()) ** 2)), 1e-12)))


def axial_noise_correlation(image: np.ndarray) -> float:
    """Lag-1 axial correlation of a raw b-scan's noise: a texture, not a level.

    The difference of neighbouring A-scans (even minus odd column, each pair's mean removed) is
    speckle without most of the scene; its correlation between vertically adjacent pixels is ~0.1 on
    Bioptigen frames and their averages (pixel-independent noise) and 0.6-0.85 on Spectralis scans,
    whatever the frame count or display gain.

    Parameters
    ----------
    image : numpy.ndarray
        A raw 2D b-scan, any real dtype, at least 2 columns and 3 rows.

    Returns
    -------
    float
        In [-1, 1]; NaN when nothing can be measured (no variation, or too few finite pixels).
    """
    even, odd = column_halves(np.asarray(image, dtype=np.float64))
    d = even - odd
    finite = np.isfinite(d)
    col_mean = np.where(finite, d, 0.0).sum(axis=0) / np.maximum(finite.sum(axis=0), 1)
    d = np.where(finite, d - col_mean, np.nan)
    a, b = d[:-1].ravel(), d[1:].ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def lateral_noise_ratio(image: np.ndarray) -> float:
    """Do neighbouring A-scans share speckle? Mean squared lag-1 over lag-2 lateral difference.

    For noise with lateral correlations rho1, rho2 the ratio is (1 - rho1) / (1 - rho2) where the scene
    varies little between A-scans: about 1 where A-scans carry independent speckle (0.88-0.99 on
    valid.vol, se_despeckling 3 and 7 and single-frame Bioptigen scans) and 0.44-0.64 on the Tian and
    Willis Spectralis scans, whose neighbouring A-scans share speckle. There the column halves are not
    independent views and split PSNR (:func:`split_psnr`) rewards keeping the shared speckle.

    Parameters
    ----------
    image : numpy.ndarray
        A raw 2D b-scan, or a stack of them (last axis: A-scans), at least 3 A-scans wide.

    Returns
    -------
    float
        Positive; NaN when nothing can be measured (no variation between A-scans two apart).
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 3:
        raise ValueError(f"need a b-scan at least 3 A-scans wide, got shape {x.shape}")
    lag1 = (x[..., 1:-1] - x[..., :-2]) ** 2
    lag2 = (x[..., 2:] - x[..., :-2]) ** 2
    ok = np.isfinite(lag1) & np.isfinite(lag2)
    den = float(lag2[ok].mean()) if ok.any() else 0.0
    return float(lag1[ok].mean() / den) if den > 0 else float("nan")
