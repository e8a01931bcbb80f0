"""npe2 single-layer writer: an image layer as a TIFF that keeps every value, its scale, position, units
and axis labels, its contrast limits, rotation and shear (an ImageJ TIFF for uint8, uint16, float32 and
float16 widened to float32; other dtypes exactly, with grayscale pages). The layer's ``affine`` is not
saved: it carries the viewer's display aspect (``_widgets/_aspect.py``), which would be applied twice."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import io


def write_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write one image layer to ``path`` with :func:`napari_hdcyclegan.io.write_tiff`; returns [path]."""
    if isinstance(data, (list, tuple)):
        data = data[0]  # multiscale: the full-resolution level
    if attributes.get("rgb"):
        raise ValueError("RGB layers are not OCT b-scans; convert the layer to grayscale before saving")
    arr = np.asarray(data)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)  # exact, and an ImageJ TIFF Fiji opens (it cannot read float16)
    ndim = arr.ndim
    scale = attributes.get("scale")
    units = attributes.get("units")
    labels = attributes.get("axis_labels")
    translate = attributes.get("translate")
    written = io.write_tiff(
        path,
        arr,
        scale=tuple(scale)[-ndim:] if scale is not None else None,
        units=tuple(str(u) for u in units)[-ndim:] if units is not None else io.PIXEL,
        axis_labels=tuple(labels)[-ndim:] if labels is not None else None,
        metadata=attributes.get("metadata") or {},
        translate=tuple(float(t) for t in translate)[-ndim:] if translate is not None else None,
        display={k: attributes.get(k) for k in ("contrast_limits", "rotate", "shear")},
        exact_dtype=True,  # float64 or int32 layers come back as they were, as the command line's outputs do
    )
    return [written]
