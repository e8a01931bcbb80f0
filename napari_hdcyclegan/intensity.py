"""Intensity mappings shared by the engine, simulator, training and baselines (numpy only)."""

from __future__ import annotations

import numpy as np

#: eyepy's HEYEX display transform: D = clip((ln(I + EPS) + OFFSET) / SPAN, 0, 1); ~36 dB of log.
LOG_EPS, LOG_OFFSET, LOG_SPAN = 2.44e-4, 8.3, 8.285
#: A model config's ``normalisation`` when it names none: robust 0.5 / 99.5 percentiles per b-scan.
DEFAULT_NORMALISATION: dict = {"method": "percentile", "low": 0.5, "high": 99.5}
#: Below this :func:`median_level` a b-scan looks like linear intensities, not a log-compressed display.
LINEAR_LEVEL_BELOW = 0.01


def check_image(data: np.ndarray, ndims: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """Return ``data`` as an array after checking it is numeric, non-empty and of an allowed rank.

    Parameters
    ----------
    data : array_like
        The image.
    ndims : tuple of int
        The allowed numbers of dimensions.

    Returns
    -------
    numpy.ndarray
        ``data`` as an array (an array input is not copied).

    Raises
    ------
    ValueError
        For a non-numeric, empty or wrongly shaped image.
    """
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"expected a numeric image, got dtype {arr.dtype}")
    if arr.ndim not in ndims:
        raise ValueError(f"expected an image with {' or '.join(map(str, ndims))} dimensions, got shape {arr.shape}")
    if arr.size == 0 or min(arr.shape) == 0:
        raise ValueError(f"empty image of shape {arr.shape}")
    return arr


def robust_range(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Percentiles ``low``/``high`` of the finite values; a constant image gives ``(v, v)``.

    Parameters
    ----------
    data : array_like
        The image (NaN and inf are ignored).
    low, high : float
        Percentiles, 0 to 100.

    Returns
    -------
    tuple of float
        ``(lo, hi)``; ``(0, 0)`` when no value is finite.
    """
    finite = np.asarray(data, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi)


def to_unit(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``[lo, hi]`` to ``[0, 1]`` as float32, clipping; NaN/inf become 0; constant gives 0.

    Parameters
    ----------
    data : array_like
        The image.
    lo, hi : float
        The levels that map to 0 and 1.

    Returns
    -------
    numpy.ndarray
        float32 in [0, 1], the shape of ``data``.
    """
    x = np.asarray(data, dtype=np.float64)  # float32 would overflow for values beyond 3.4e38
    span = hi - lo
    out = ((x - lo) / span if span > 0 else np.zeros_like(x)).astype(np.float32)
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def from_unit(unit: np.ndarray, lo: float, hi: float, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`to_unit` into ``dtype`` (integers rounded and clipped to their range).

    Parameters
    ----------
    unit : array_like
        Values in [0, 1].
    lo, hi : float
        The levels 0 and 1 map back to.
    dtype : numpy.dtype
        The output dtype.

    Returns
    -------
    numpy.ndarray
    """
    dtype = np.dtype(dtype)
    span = hi - lo
    x = np.asarray(unit, dtype=np.float64) * span + lo if span > 0 else np.full(np.shape(unit), lo)
    if dtype.kind in "iub":
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        x = np.rint(x)
        if info is not None:
            x = np.clip(x, info.min, info.max)
    return x.astype(dtype)


def integer_range(lo: float, hi: float, dtype: np.dtype) -> tuple[float, float]:
    """The levels an integer image with values in ``[lo, hi]`` maps to [0, 1] under ``"dtype"``.

    uint8 is always ``[0, 255]`` and bool ``[0, 1]``. Any other non-negative integer image is mapped
    by the bit depth its values use, at least 8 bits: ``[0, 2**b - 1]`` (12-bit data in uint16, max
    4095 -> ``[0, 4095]``; 8-bit values in int32 -> ``[0, 255]``, like uint8). An image with negative
    values is mapped by its own ``[lo, hi]`` (int16 with values -300..700 -> ``[-300, 700]``): signed
    exports have no standard black level, and the models read the darkest values as background
    (a two's-complement range put that background at mid-grey). The inverse mapping restores the
    values, signs included.

    Parameters
    ----------
    lo, hi : float
        The smallest and largest value of the image.
    dtype : numpy.dtype
        Its integer (or bool) dtype.

    Returns
    -------
    tuple of float
        ``(lo, hi)`` levels that map to 0 and 1.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 0.0, 1.0
    if dtype == np.uint8:
        return 0.0, 255.0
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        bits = max(8, hi.bit_length())
        return 0.0, float(2**bits - 1)
    return float(lo), float(hi)


def log_display(linear: np.ndarray) -> np.ndarray:
    """Linear OCT intensity (e.g. HEYEX .vol, 0..1) -> log display in [0, 1], float32.

    Parameters
    ----------
    linear : array_like
        Linear intensities (negative values and NaN count as 0).

    Returns
    -------
    numpy.ndarray
        float32 display levels in [0, 1] (``LOG_EPS``, ``LOG_OFFSET``, ``LOG_SPAN``).
    """
    lin = np.clip(np.nan_to_num(np.asarray(linear, dtype=np.float64), nan=0.0), 0.0, None)
    return np.clip((np.log(lin + LOG_EPS) + LOG_OFFSET) / LOG_SPAN, 0.0, 1.0).astype(np.float32)


def inverse_log_display(display: np.ndarray) -> np.ndarray:
    """Log display in [0, 1] -> linear intensity (inverse of :func:`log_display` inside its range).

    Parameters
    ----------
    display : array_like
        Display levels in [0, 1].

    Returns
    -------
    numpy.ndarray
        float64 linear intensities, non-negative.
    """
    d = np.asarray(display, dtype=np.float64)
    return np.clip(np.exp(d * LOG_SPAN - LOG_OFFSET) - LOG_EPS, 0.0, None)


def unit_range(data: np.ndarray, normalisation: dict | None = None) -> tuple[float, float]:
    """The ``(lo, hi)`` that maps ``data`` to [0, 1] under a model's ``normalisation`` config.

    ``{"method": "percentile", "low": 0.5, "high": 99.5}``: robust percentiles of this image.
    ``{"method": "dtype"}``: absolute levels kept, as models trained on display-domain images need:
    uint8 is ``value / 255`` (what the shipped models were trained on), other integers use the bit
    depth of their actual values (:func:`integer_range`), floats already in [0, 1] are used as they
    are and other floats fall back to their min/max.

    Parameters
    ----------
    data : array_like
        The image.
    normalisation : dict, optional
        The model config's ``normalisation``; None is :data:`DEFAULT_NORMALISATION`.

    Returns
    -------
    tuple of float
        ``(lo, hi)`` for :func:`to_unit`.

    Raises
    ------
    ValueError
        For an unknown ``method``.
    """
    norm = normalisation or DEFAULT_NORMALISATION
    method = norm.get("method", "percentile")
    arr = np.asarray(data)
    if method == "percentile":
        return robust_range(arr, float(norm.get("low", 0.5)), float(norm.get("high", 99.5)))
    if method == "dtype":
        if arr.dtype.kind in "uib":
            return integer_range(arr.min(), arr.max(), arr.dtype)
        lo, hi = robust_range(arr, 0.0, 100.0)
        if lo >= -1e-3 and hi <= 1.0 + 1e-3:
            return 0.0, 1.0
        return lo, hi
    raise ValueError(f"unknown normalisation method {method!r}")


def median_level(bscan: np.ndarray) -> float:
    """Where a b-scan's median pixel lies in its own 0.5-99.5 percentile range (0 to 1).

    Pixels at or below the 0.5th percentile (black padding, masked areas) are left out of the median; when
    they are most of the b-scan nothing is said (NaN): a dark display scan (Tian subject 2 b-scan 08) and
    linear data rounded to 8 bits both look like that.

    Log-compressed display b-scans, as scanners export them, put it at 0.03-0.43 (126 of the 127 shared
    real images: Spectralis, Bioptigen, other scanners; the other is not measurable), the linear
    intensities stored in a Heidelberg ``.vol`` (valid.vol) at 0.0016: speckle spans decades that a linear
    scale crowds near zero. (The shared images mapped back through :func:`inverse_log_display` land at
    0.0002-0.024, the noisiest single frames highest.)

    Parameters
    ----------
    bscan : array_like
        A 2D b-scan, any real dtype; NaN and inf pixels are left out.

    Returns
    -------
    float
        In [0, 1]; NaN when the b-scan has no finite pixels or no spread.
    """
    x = np.asarray(bscan, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    lo, hi = robust_range(x)  # the range the percentile normalisation maps to [0, 1]
    if hi <= lo:
        return float("nan")
    above = x[x > lo]
    if above.size < x.size / 2:  # most pixels at the floor: dark display scans and 8-bit linear data alike
        return float("nan")
    return float(np.clip((np.median(above) - lo) / (hi - lo), 0.0, 1.0))


def looks_linear(data: np.ndarray, max_bscans: int = 8) -> float | None:
    """The level of ``data`` if it looks like linear intensities, else None.

    The median :func:`median_level` of up to ``max_bscans`` evenly spaced b-scans, when it is below
    :data:`LINEAR_LEVEL_BELOW`. Linear intensities as a ``.vol`` stores them (floating point) are caught;
    linear amplitudes (their square root), linear data rounded to 8 bits and the linear form of the
    noisiest single frames are not (they read above the threshold, or as not measurable).

    Parameters
    ----------
    data : numpy.ndarray
        A 2D b-scan or a (B, H, W) volume (anything with ``shape`` and b-scan indexing).
    max_bscans : int
        How many b-scans of a volume to measure.

    Returns
    -------
    float or None
        The level when it says linear; None for display-domain data and when nothing can be measured.
    """
    volume = len(data.shape) == 3  # b-scans are read one at a time (a memory-mapped volume stays on disk)
    n = data.shape[0] if volume else 1
    picks = np.unique(np.linspace(0, n - 1, min(max_bscans, n)).round().astype(int))
    levels = [v for v in (median_level(data[i] if volume else data) for i in picks) if np.isfinite(v)]
    if not levels:
        return None
    level = float(np.median(levels))
    return level if level < LINEAR_LEVEL_BELOW else None


def linear_warning(name: str, level: float) -> str:
    """The one-line warning for an input that :func:`looks_linear` flags."""
    return (f"{name} looks like linear intensities (median pixel at {level:.2%} of its range; log-compressed "
            "display scans read several per cent): the models expect display-domain b-scans as scanners export "
            "them, so little noise is removed; log-compress it first (napari_hdcyclegan.intensity.log_display) "
            "or read the vendor file")
