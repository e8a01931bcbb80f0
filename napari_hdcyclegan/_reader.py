"""npe2 reader: OCT b-scans, stacks, folders and vendor volumes as scaled napari layers.

Vendor layer segmentations (ILM, RPE = vendor BM, ...) become Shapes layers of paths, one path per
b-scan (split where the height is missing), in the image's world coordinates: they render as lines on
the current b-scan while scrolling, in 2D and in 3D, and keep the heights in ``metadata["heights"]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import PIXEL, UM, OctImage, OctReadError, is_supported, read_oct, read_stack
from .io.vendor import BOUNDARY_COLORS, DEFAULT_BOUNDARY_COLOR

LayerDataTuple = tuple[Any, dict[str, Any], str]
#: b-scan spacing of a Spectralis 49-line macular volume over ~6 mm (µm): the nominal spacing a single
#: b-scan (which has none) is shown with beside µm depth and width.
BSCAN_SPACING_UM = 120.0


def napari_get_reader(path: str | Sequence[str]) -> Callable[[Any], list] | None:
    """Return :func:`read_layers` when every path is something :func:`io.read_oct` can try, else None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(is_supported(p) for p in paths):
        return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list:
    """Read a path into an image layer (+ vendor boundary layers); failures become notifications.

    napari hands a reader a list of paths only for "Open Files as Stack" (``stack=True``): several
    b-scan files then become one (N, H, W) layer, in the order given.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    try:
        image = read_stack(paths) if len(paths) > 1 else read_oct(paths[0])
    except OctReadError as exc:
        _notify_error(str(exc))
        # napari's "read fine, nothing to add" sentinel: the user sees our notification and no
        # "reader returned no data" traceback dialog
        return [(None,)]
    return nominal_spacing(oct_layers(image, _layer_name(paths[0])))


def oct_layers(image: OctImage, name: str) -> list[LayerDataTuple]:
    """Image layer plus one Shapes layer per stored boundary, all sharing scale, units and axis labels."""
    meta = dict(image.metadata)
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": tuple(image.scale),
        "units": tuple(image.units),
        "axis_labels": tuple(image.axis_labels),
        "metadata": meta,
    }
    if image.translate is not None:
        kwargs["translate"] = tuple(image.translate)
    if meta.get("intensity_transform") == "log_display":
        kwargs["contrast_limits"] = (0.0, 1.0)
    kwargs.update(image.display)  # a saved layer's contrast limits, rotation and shear
    layers: list[LayerDataTuple] = [(image.data, kwargs, "image")]
    turned = {k: v for k, v in image.display.items() if k in ("rotate", "shear")}
    for bname, rows in image.boundaries.items():
        paths, line, kind = boundary_layer(rows, f"{name}_{bname}", bname, image.scale, image.units,
                                           image.axis_labels, image.data.ndim, source=meta.get("path"),
                                           translate=image.translate)
        layers.append((paths, {**line, **turned}, kind))  # drawn over the image
    return layers


def boundary_layer(
    rows: np.ndarray,
    layer_name: str,
    boundary: str,
    scale: Sequence[float],
    units: Sequence[str],
    axis_labels: Sequence[str],
    ndim: int,
    source: str | None = None,
    translate: Sequence[float] | None = None,
) -> LayerDataTuple:
    """Shapes paths for boundary heights ``rows`` (N, W) (or (W,)), one path per finite run per b-scan."""
    heights = np.atleast_2d(np.asarray(rows, dtype=np.float32))
    paths = boundary_paths(heights, ndim)
    color = BOUNDARY_COLORS.get(boundary, DEFAULT_BOUNDARY_COLOR)
    kwargs = {
        "name": layer_name,
        "shape_type": "path",
        "edge_color": color,
        "face_color": "transparent",
        "edge_width": 1.5,
        "scale": tuple(scale),
        "units": tuple(units),
        "axis_labels": tuple(axis_labels),
        "metadata": {"boundary": boundary, "heights": heights, "source": source},
    }
    if translate is not None:
        kwargs["translate"] = tuple(translate)
    return (paths, kwargs, "shapes")


def boundary_paths(heights: np.ndarray, ndim: int) -> list[np.ndarray]:
    """Vertices (b-scan, row, column) (ndim 3) or (row, column) (ndim 2) per run of finite heights."""
    heights = np.atleast_2d(heights)
    if ndim == 2 and heights.shape[0] != 1:
        raise ValueError(f"a 2D b-scan takes one row of heights, got {heights.shape}")
    paths = []
    cols = np.arange(heights.shape[1], dtype=np.float32)
    for i, row in enumerate(heights):
        finite = np.isfinite(row)
        # split at missing A-scans so a path never bridges a gap with a straight line
        edges = np.flatnonzero(np.diff(np.r_[0, finite.astype(np.int8), 0]))
        for start, stop in zip(edges[::2], edges[1::2]):
            if stop - start < 2:
                continue  # napari paths need two vertices
            seg = np.column_stack([row[start:stop], cols[start:stop]])
            if ndim == 3:
                seg = np.column_stack([np.full(stop - start, i, dtype=np.float32), seg])
            paths.append(seg)
    return paths


def _layer_name(path: str | os.PathLike) -> str:
    """Layer name from the file stem (folder name for a folder)."""
    p = Path(path)
    return p.name if p.is_dir() else p.stem


def _notify_error(message: str) -> None:
    """Show a napari error notification (falls back to a warning outside napari)."""
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # pragma: no cover - napari is a dependency, but keep the core usable
        import warnings

        warnings.warn(message, stacklevel=3)
        return
    show_error(message)


def nominal_spacing(layers: list[tuple[Any, dict, str]]) -> list[tuple[Any, dict, str]]:
    """Layers of a single b-scan whose b-scan axis is in pixels, given µm and :data:`BSCAN_SPACING_UM`
    when depth and width are in µm.

    One b-scan has no b-scan spacing; a pixel unit next to the µm of other layers (a volume, the
    simulated sample) makes napari drop units ("Inconsistent units"), and a spacing of 1 next to
    120 µm makes a 481-step slider.
    """
    image = layers[0][0]
    units = tuple(str(u) for u in layers[0][1].get("units", ()))
    if image.ndim != 3 or image.shape[0] != 1 or len(units) != 3 or units[0] != PIXEL or PIXEL in units[1:]:
        return layers
    out = []
    for data, kwargs, kind in layers:
        kwargs = {**kwargs, "units": (UM, *tuple(kwargs["units"])[1:]),
                  "scale": (BSCAN_SPACING_UM, *tuple(kwargs["scale"])[1:])}
        if "translate" in kwargs:  # a saved b-scan's place on its pixel b-scan axis, now in µm
            first, *rest = kwargs["translate"]
            kwargs["translate"] = (first * BSCAN_SPACING_UM, *rest)
        if kind == "image":
            kwargs["metadata"] = {**kwargs.get("metadata", {}),
                                  "bscan_spacing_um": f"nominal {BSCAN_SPACING_UM:g} (one b-scan)"}
        out.append((data, kwargs, kind))
    return out
