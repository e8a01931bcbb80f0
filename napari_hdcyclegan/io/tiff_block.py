"""The JSON block written TIFFs carry beside their pixels: exact scale, labels, metadata, boundary lines.

:func:`napari_hdcyclegan.io.write_tiff_pages` stores one JSON object under the key
``napari_hdcyclegan`` (ImageJ ``Properties`` of an ImageJ TIFF, the ImageDescription JSON of a
shaped TIFF); other TIFF readers ignore it and see plain grayscale pages. Its keys:

- ``axis_labels``, ``units``, ``scale``: per axis, scale in µm (or pixels);
- ``translate`` (when not all 0): per axis, the first pixel's position in the units of ``scale``
  (napari's ``translate``: a saved crop or single b-scan reopens where it was);
- ``display`` (when set): how the image was shown, as napari layer fields: ``contrast_limits``
  ``[low, high]``, ``rotate`` (an ndim x ndim matrix) and ``shear`` (ndim (ndim - 1) / 2 values);
  a reopened layer looks as it did (:func:`block_display`);
- ``metadata``: the image's metadata (provenance, source record, kept vendor fields);
- ``boundaries`` (when the image has them): ``{name: {"shape": [N, W], "dtype": "<f4",
  "encoding": "zlib+base64", "data": ...}}``, the heights (rows from the top, NaN where missing, as
  in docs/conventions.md) as little-endian float32 in C order, zlib-compressed, base64-encoded:
  NaN gaps and every value come back bit for bit.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

import numpy as np

from ._common import _jsonable

#: Encoding of a boundary record's ``data``.
BOUNDARY_ENCODING = "zlib+base64"
_BOUNDARY_DTYPE = np.dtype("<f4")
#: Metadata of a vendor image that its outputs keep at the top level (read back by :func:`read_oct`):
#: the intensity domain of the pixels and what the vendor file says about the scan.
KEPT_FIELDS = ("intensity_transform", "source_intensity", "laterality", "scan_pattern")


def kept_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    """The :data:`KEPT_FIELDS` of an image's metadata that are set.

    Parameters
    ----------
    metadata : dict

    Returns
    -------
    dict
    """
    return {k: _jsonable(metadata[k]) for k in KEPT_FIELDS if metadata.get(k) not in (None, "")}


def block_json(scale_um: tuple[float, ...], units: tuple[str, ...], labels: tuple[str, ...],
               metadata: dict[str, Any] | None, boundaries: dict[str, np.ndarray] | None,
               shape: tuple[int, ...], translate: tuple[float, ...] | None = None,
               display: dict[str, Any] | None = None) -> str:
    """The JSON block of a TIFF of ``shape``; boundaries are checked against it (ValueError).

    Parameters
    ----------
    scale_um, units, labels : tuple
        Per axis.
    metadata : dict or None
        JSON-friendly metadata (anything else is summarised by ``_jsonable``).
    boundaries : dict of numpy.ndarray or None
        Heights ``(N, W)`` (or ``(W,)`` / ``(1, W)`` for a b-scan) per name.
    shape : tuple of int
        ``(H, W)`` or ``(N, H, W)``.
    translate : tuple of float, optional
        Per axis; stored only when some value is not 0.
    display : dict, optional
        Checked by :func:`checked_display` (ValueError); stored when not empty.

    Returns
    -------
    str
    """
    block: dict[str, Any] = {"axis_labels": list(labels), "units": list(units), "scale": list(scale_um),
                             "metadata": _jsonable(metadata or {})}
    if translate is not None and any(translate):
        block["translate"] = [float(t) for t in translate]
    display = checked_display(display, len(shape))
    if display:
        block["display"] = {k: np.asarray(v).tolist() for k, v in display.items()}
    if boundaries:
        block["boundaries"] = {str(name): encode_heights(rows, shape, str(name))
                               for name, rows in boundaries.items()}
    return json.dumps(block, default=str)


def parse_block(text: Any) -> dict | None:
    """The block parsed from its JSON text; None when absent or not a JSON object."""
    if not isinstance(text, (str, bytes)):
        return None
    try:
        block = json.loads(text)
    except ValueError:
        return None
    return block if isinstance(block, dict) else None


def block_translate(block: dict | None, ndim: int) -> tuple[float, ...] | None:
    """The block's ``translate`` for an image of ``ndim`` axes; None when absent or malformed."""
    values = (block or {}).get("translate")
    if not isinstance(values, list) or len(values) != ndim:
        return None
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return out if all(np.isfinite(out)) else None


def checked_display(display: dict[str, Any] | None, ndim: int) -> dict[str, Any]:
    """The display fields of ``display`` that differ from napari's defaults, as layer arguments.

    Parameters
    ----------
    display : dict or None
        Any of ``contrast_limits`` (2 finite values, low < high), ``rotate`` (``(ndim, ndim)``) and
        ``shear`` (``ndim (ndim - 1) / 2`` values, or an upper-triangular ``(ndim, ndim)`` matrix);
        other keys are ignored.
    ndim : int

    Returns
    -------
    dict
        ``contrast_limits`` as a tuple of floats, ``rotate`` and ``shear`` as float arrays.

    Raises
    ------
    ValueError
        When a field has the wrong size or is not finite.
    """
    out: dict[str, Any] = {}
    for key, size in (("contrast_limits", 2), ("rotate", ndim * ndim), ("shear", ndim * (ndim - 1) // 2)):
        if (display or {}).get(key) is None:
            continue
        values = np.asarray(display[key], dtype=np.float64)  # type: ignore[index]
        if key == "shear" and values.shape == (ndim, ndim):
            values = values[np.triu_indices(ndim, 1)]
        if values.size != size or not np.isfinite(values).all():
            raise ValueError(f"display {key} {values.tolist()} does not fit a {ndim}D image")
        if key == "contrast_limits":
            if not values[0] < values[1]:
                raise ValueError(f"contrast limits must be low < high, got {values.tolist()}")
            out[key] = (float(values[0]), float(values[1]))
        elif not np.allclose(values.ravel(), np.eye(ndim).ravel() if key == "rotate" else 0.0, rtol=0, atol=1e-12):
            out[key] = values.reshape(ndim, ndim) if key == "rotate" else values
    return out


def block_display(block: dict | None, ndim: int) -> dict[str, Any]:
    """The block's ``display`` for an image of ``ndim`` axes (:func:`checked_display`); {} when absent
    or malformed (a reader must not fail on how an image was shown)."""
    try:
        return checked_display((block or {}).get("display"), ndim)
    except (TypeError, ValueError, AttributeError):
        return {}


def boundary_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(N, W)`` of the boundary heights of an image of ``shape`` (N = 1 for a b-scan)."""
    return (int(shape[0]) if len(shape) == 3 else 1), int(shape[-1])


def encode_heights(rows: Any, shape: tuple[int, ...], name: str = "boundary") -> dict[str, Any]:
    """One boundary record (see the module docstring) for an image of ``shape``.

    Raises
    ------
    ValueError
        When the heights do not have one value per A-scan of every b-scan.
    """
    expected = boundary_shape(shape)
    heights = np.asarray(rows, dtype=np.float64)
    if heights.size != expected[0] * expected[1] or (heights.ndim > 0 and heights.shape[-1] != expected[1]):
        raise ValueError(f"boundary {name!r} has shape {heights.shape}; an image of shape {tuple(shape)} "
                         f"takes {expected} heights (one per A-scan of each b-scan)")
    raw = np.ascontiguousarray(heights.reshape(expected), dtype=_BOUNDARY_DTYPE).tobytes()
    return {"shape": list(expected), "dtype": _BOUNDARY_DTYPE.str, "encoding": BOUNDARY_ENCODING,
            "data": base64.b64encode(zlib.compress(raw)).decode("ascii")}


def decode_boundaries(records: Any, shape: tuple[int, ...]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Boundary heights ``(N, W)`` float32 from a block's ``boundaries``, for an image of ``shape``.

    A record that cannot be decoded or does not fit the image is left out and named in a note.

    Parameters
    ----------
    records : dict or None
        The block's ``boundaries``.
    shape : tuple of int
        The image read: ``(H, W)`` or ``(N, H, W)``.

    Returns
    -------
    dict of numpy.ndarray, list of str
        The boundaries in stored order and notes on the records left out.
    """
    if not records:
        return {}, []
    if not isinstance(records, dict):
        return {}, ["the stored boundary lines are not readable and were left out"]
    expected = boundary_shape(shape)
    out: dict[str, np.ndarray] = {}
    notes = []
    for name, record in records.items():
        try:
            heights = _decode(record)
        except (KeyError, TypeError, ValueError, binascii.Error, zlib.error) as exc:
            notes.append(f"stored boundary {name!r} is not readable ({type(exc).__name__}) and was left out")
            continue
        if heights.shape != expected:
            notes.append(f"stored boundary {name!r} has shape {heights.shape}, not {expected} of this image, "
                         "and was left out")
            continue
        out[str(name)] = heights
    return out, notes


def _decode(record: dict[str, Any]) -> np.ndarray:
    """The float32 heights of one boundary record."""
    if record["encoding"] != BOUNDARY_ENCODING:
        raise ValueError(f"unknown encoding {record['encoding']!r}")
    dtype = np.dtype(record["dtype"])
    if dtype.kind != "f":
        raise ValueError(f"heights of dtype {dtype}")
    shape = tuple(int(n) for n in record["shape"])
    raw = zlib.decompress(base64.b64decode(record["data"], validate=True))
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float32)
