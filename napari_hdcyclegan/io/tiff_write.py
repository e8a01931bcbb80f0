"""TIFF out: grayscale-page ImageJ TIFFs, or TIFFs of exactly the input's dtype where ImageJ cannot.

Pages are streamed (a volume need not be in memory) to a temporary name and renamed (:mod:`.atomic`);
every page is a grayscale page; scale, metadata and boundary lines travel in a JSON block
(:mod:`.tiff_block`) that :mod:`.tiff` reads back.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import OutputError
from ._common import _PROPERTY_KEY, _UNIT_TO_UM, AXES_2D, AXES_3D, PIXEL, UM, _per_axis
from .atomic import atomic_output
from .formats import TIFF_SUFFIXES
from .tiff_block import block_json

#: dtypes ImageJ stores (native byte order); anything else is written as a shaped TIFF of that dtype.
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
#: Above this many bytes a shaped TIFF is written as BigTIFF.
_BIGTIFF_BYTES = 2**32 - 2**25


def write_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    scale: tuple[float, ...] | None = None,
    units: str | tuple[str, ...] = UM,
    axis_labels: tuple[str, ...] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    exact_dtype: bool = False,
    boundaries: dict[str, np.ndarray] | None = None,
    translate: tuple[float, ...] | None = None,
    display: dict[str, Any] | None = None,
) -> str:
    """Write a 2D b-scan or 3D stack as a TIFF that keeps the scale; returns the path written.

    By default an ImageJ TIFF (other dtypes converted to uint16/float32 without losing values, as
    Fiji needs); ``exact_dtype=True`` keeps any dtype exactly (shaped TIFF where ImageJ cannot).

    Parameters
    ----------
    path : str or os.PathLike
        The output file (written atomically).
    data : numpy.ndarray
        ``(H, W)`` or ``(N, H, W)``.
    scale, units : tuple, optional
        Pixel size per axis (default 1) and its unit (``"um"``, or ``"pixel"`` where unknown).
    axis_labels : tuple of str, optional
    metadata : dict, optional
        JSON-serialisable, stored with the image.
    exact_dtype : bool
        Keep the dtype exactly instead of the ImageJ-compatible one.
    boundaries : dict of numpy.ndarray, optional
        Heights ``(N, W)`` per name, NaN where missing; :func:`read_oct` returns them (:mod:`.tiff_block`).
    translate : tuple of float, optional
        The first pixel's position per axis, in the units of ``scale``; :func:`read_oct` returns it.
    display : dict, optional
        ``contrast_limits``, ``rotate``, ``shear`` (napari layer fields): how the image is shown;
        :func:`read_oct` returns them. Rotate and shear need one unit on every axis (else left out,
        with a warning: converting the scale to µm would change their meaning).

    Returns
    -------
    str
        The path written.
    """
    arr = np.asarray(data)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise OutputError(f"write_tiff expects a non-empty 2D b-scan or 3D stack, got shape {arr.shape}")
    if not exact_dtype:
        arr = _imagej_dtype(arr)
    pages = arr[None] if arr.ndim == 2 else arr
    return write_tiff_pages(path, iter(pages), arr.shape, arr.dtype, scale, units, axis_labels, metadata,
                            boundaries=boundaries, translate=translate, display=display)


def write_tiff_pages(
    path: str | os.PathLike,
    pages: Iterable[np.ndarray],
    shape: tuple[int, ...],
    dtype: np.dtype,
    scale: tuple[float, ...] | None = None,
    units: str | tuple[str, ...] = UM,
    axis_labels: tuple[str, ...] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    boundaries: dict[str, np.ndarray] | None = None,
    translate: tuple[float, ...] | None = None,
    display: dict[str, Any] | None = None,
) -> str:
    """Stream b-scans (arrays of one or more pages, in order) into a TIFF of ``shape``/``dtype``.

    Atomic: written under a temporary name in the same folder and renamed. uint8, uint16 and float32
    become ImageJ TIFFs; other dtypes (int8/16/32, float16/64, ...) a TIFF of exactly that dtype with
    the same scale and metadata (centimetre resolution tags plus a JSON block). Big-endian data is
    written in native byte order (same values).

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    pages : iterable of numpy.ndarray
        ``(H, W)`` or ``(k, H, W)`` blocks whose pages fill ``shape`` in order.
    shape, dtype : tuple of int, numpy.dtype
        ``(H, W)`` or ``(N, H, W)`` and dtype of the whole image.
    scale, units, axis_labels, metadata, boundaries, translate, display
        As for :func:`write_tiff`.

    Returns
    -------
    str
        The path written.
    """
    import tifffile

    if os.path.splitext(os.fspath(path))[1].lower() not in TIFF_SUFFIXES:  # TIFF bytes under another name
        raise OutputError(f"{os.fspath(path)}: write_tiff writes TIFF files; name it .tif or .tiff")
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if ndim not in (2, 3) or 0 in shape:
        raise OutputError(f"write_tiff expects a non-empty 2D b-scan or 3D stack, got shape {shape}")
    dtype = np.dtype(dtype)
    out_dtype = np.dtype(np.uint8) if dtype.kind == "b" else dtype.newbyteorder("=")
    scale_um, out_units, labels = _calibration(scale, units, axis_labels, ndim)
    if translate is not None:
        if len(translate) != ndim:
            raise OutputError(f"translate {tuple(translate)} does not match a {ndim}D image")
        translate = _in_um(translate, units, ndim)  # the block's translate is in the units of its scale
    blob = block_json(scale_um, out_units, labels, metadata, boundaries, shape, translate,
                      _unit_free(display, units, ndim))
    stream = _pages(pages, shape, out_dtype)
    with atomic_output(path) as tmp:
        if out_dtype in IMAGEJ_DTYPES:
            kwargs = _imagej_kwargs(scale_um, out_units, ndim, blob)
        else:
            kwargs = _shaped_kwargs(scale_um, out_units, ndim, blob, shape, out_dtype)
        tifffile.imwrite(tmp, stream, shape=shape, dtype=out_dtype, photometric="minisblack", **kwargs)
    return os.fspath(path)


def _in_um(values: Any, units: Any, ndim: int) -> tuple[float, ...]:
    """Per-axis lengths in ``units`` (mm, nm, ...) converted to µm, as :func:`_calibration` does the scale."""
    factors = [_UNIT_TO_UM.get(str(u).lower()) for u in _per_axis(units, ndim)]
    return tuple(float(v) * f if f is not None else float(v) for v, f in zip(values, factors))


def _unit_free(display: dict[str, Any] | None, units: Any, ndim: int) -> dict[str, Any] | None:
    """``display`` without rotate and shear when the axes' units convert to µm by different factors."""
    factors = {_UNIT_TO_UM.get(str(u).lower(), 1.0) for u in _per_axis(units, ndim)}
    if not display or len(factors) == 1 or not {"rotate", "shear"} & set(display):
        return display
    warnings.warn(f"rotate and shear are not saved: the axes have different units ({units})", stacklevel=3)
    return {k: v for k, v in display.items() if k not in ("rotate", "shear")}


def _calibration(scale: tuple[float, ...] | None, units: Any, axis_labels: Any, ndim: int
                 ) -> tuple[tuple[float, ...], tuple[str, ...], tuple[str, ...]]:
    """Scale in µm (or pixels), units and axis labels for ``ndim`` axes, checked."""
    scale = tuple(float(s) for s in (scale if scale is not None else (1.0,) * ndim))[-ndim:]
    unit_list = _per_axis(units, ndim)
    if len(scale) != ndim:
        raise OutputError(f"scale {scale} does not match a {ndim}D image")
    if not all(math.isfinite(s) and s > 0 for s in scale):
        raise OutputError(f"scale must be positive and finite, got {scale}")
    scale_um = _in_um(scale, units, ndim)
    out_units = tuple(UM if _UNIT_TO_UM.get(str(u).lower()) is not None else PIXEL for u in unit_list)
    labels = tuple(axis_labels) if axis_labels is not None else (AXES_3D if ndim == 3 else AXES_2D)
    return scale_um, out_units, labels[-ndim:]


def _imagej_kwargs(scale_um: tuple[float, ...], units: tuple[str, ...], ndim: int, blob: str) -> dict:
    """tifffile arguments for an ImageJ hyperstack that Fiji opens with the same calibration."""
    meta: dict[str, Any] = {"axes": "ZYX" if ndim == 3 else "YX", "Properties": {_PROPERTY_KEY: blob}}
    calibrated = units[-1] == UM and units[-2] == UM
    if calibrated:
        meta["unit"] = "micron"
    if ndim == 3 and units[0] == UM:
        meta["spacing"] = scale_um[0]
    resolution = (1.0 / scale_um[-1], 1.0 / scale_um[-2]) if calibrated else None
    return {"imagej": True, "resolution": resolution, "metadata": meta}


def _shaped_kwargs(scale_um: tuple[float, ...], units: tuple[str, ...], ndim: int, blob: str,
                   shape: tuple[int, ...], dtype: np.dtype) -> dict:
    """tifffile arguments for a shaped TIFF (any dtype): centimetre resolution and our JSON block."""
    kwargs: dict[str, Any] = {"metadata": {"axes": "ZYX" if ndim == 3 else "YX", _PROPERTY_KEY: blob},
                              "bigtiff": math.prod(shape) * dtype.itemsize > _BIGTIFF_BYTES}
    if units[-1] == UM and units[-2] == UM:
        kwargs["resolution"] = (1e4 / scale_um[-1], 1e4 / scale_um[-2])
        kwargs["resolutionunit"] = "CENTIMETER"
    return kwargs


def _pages(chunks: Iterable[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> Iterator[np.ndarray]:
    """One contiguous page of ``dtype`` at a time from chunks of pages; checks the count and shape."""
    page_shape, n, done = shape[-2:], (shape[0] if len(shape) == 3 else 1), 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        chunk = chunk[None] if chunk.ndim == 2 else chunk
        if chunk.shape[1:] != page_shape:
            raise OutputError(f"page shape {chunk.shape[1:]} does not match the TIFF's {page_shape}")
        for page in chunk:
            done += 1
            if done > n:
                raise OutputError(f"more than the {n} pages announced")
            yield np.ascontiguousarray(page, dtype=dtype)
    if done != n:
        raise OutputError(f"only {done} of the {n} pages announced were given")


def _imagej_dtype(arr: np.ndarray) -> np.ndarray:
    """ImageJ stores only uint8, uint16 and float32: convert others without losing values."""
    if arr.dtype in (np.uint8, np.uint16, np.float32):
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() <= np.iinfo(np.uint16).max:
        return arr.astype(np.uint16)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float32)
    raise OutputError(f"cannot write dtype {arr.dtype} to TIFF")
