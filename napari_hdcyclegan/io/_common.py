"""Shared pieces of the readers and writers: the image type, the error, constants and helpers."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HDCycleGANError
from .formats import (  # noqa: F401 - re-exported
    FORMAT_NAMES,
    IMAGE_SUFFIXES,
    PLAIN_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TIFF_SUFFIXES,
    VENDOR_SUFFIXES,
)

AXES_3D = ("b-scan", "depth", "lateral")
AXES_2D = ("depth", "lateral")
UM, PIXEL = "um", "pixel"
#: Key of the JSON blob (axis labels, metadata, exact scale) in ImageJ "Properties" written here.
_PROPERTY_KEY = "napari_hdcyclegan"
#: Heidelberg/eyepy mark "no data" in linear float exports with float32 max (.vol) or values > 1.99 (.e2e).
_VENDOR_INVALID = 3.0e38
_VENDOR_EXTRA = "pip install 'napari-hdcyclegan[vendor]'"

_FORMAT_NAMES = FORMAT_NAMES
_UNIT_TO_UM = {
    "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3,
    "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6,
}


def um_per_pixel(scale: Any, units: Any, axis: int) -> float | None:
    """µm per pixel along ``axis`` from a ``scale`` and its ``units`` (None when the unit is not a length).

    Parameters
    ----------
    scale, units : sequence or None
        Per-axis pixel size and unit names (``"um"``, ``"µm"``, ``"mm"``, ... or ``"pixel"``).
    axis : int
        The axis (negative counts from the end: -2 is depth).

    Returns
    -------
    float or None
        µm per pixel; None for a pixel or unknown unit, a non-positive size or a missing axis.
    """
    if scale is None or units is None or not -len(scale) <= axis < len(scale) or len(units) != len(scale):
        return None
    factor = _UNIT_TO_UM.get(str(units[axis]).strip().lower())
    size = float(scale[axis])
    return size * factor if factor is not None and size > 0 else None


class OctReadError(HDCycleGANError, ValueError):
    """A file that cannot be read as an OCT image: missing, empty, corrupt, wrong content, unsupported."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read {self.path}: {reason}")


@dataclass
class OctImage:
    """An OCT b-scan ``(H, W)`` or volume ``(N, H, W)`` with its physical scale and vendor boundaries."""

    data: np.ndarray
    scale: tuple[float, ...]
    units: tuple[str, ...]
    axis_labels: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    boundaries: dict[str, np.ndarray] = field(default_factory=dict)
    linear: bool = False
    #: Position of the first pixel, per axis in the units of ``scale`` (napari's ``translate``).
    translate: tuple[float, ...] | None = None
    #: How a saved layer was shown (napari fields: contrast_limits, rotate, shear), from a TIFF's block.
    display: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# shared helpers


def _to_gray(data: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, str, str | None]:
    """Collapse an RGB(A) sample axis ('S') to gray, keeping the dtype; identical channels exactly.

    Returns the data, its axes and a note (None when the channels were identical: nothing lost).
    """
    if "S" not in axes:
        return data, axes, None
    if axes[-1] != "S":  # planar RGB (separate colour planes): samples last
        i = axes.index("S")
        data, axes = np.moveaxis(data, i, -1), axes[:i] + axes[i + 1:] + "S"
    if data.shape[-1] not in (3, 4):
        raise OctReadError(path, f"unsupported colour layout (axes {axes!r}, shape {data.shape})")
    from skimage import color, util

    rgb = np.asarray(data)[..., :3]
    alpha = alpha_note(np.asarray(data)[..., 3]) if data.shape[-1] == 4 else None
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].copy(), axes[:-1], alpha  # gray stored as RGB (exported b-scans): exact
    lum = color.rgb2gray(rgb)
    converters = {np.dtype(np.uint8): util.img_as_ubyte, np.dtype(np.uint16): util.img_as_uint}
    gray = converters.get(rgb.dtype, lambda a: a.astype(np.float32))(lum)
    colour = "colour (RGB) image converted to gray by luminance (OCT b-scans are gray)"
    return gray, axes[:-1], f"{colour}; {alpha}" if alpha else colour


def alpha_note(alpha: np.ndarray) -> str | None:
    """The note for an alpha channel the reader drops: None when it is constant (it carries nothing)."""
    a = np.asarray(alpha)
    if a.size == 0 or bool(np.all(a == a.flat[0])):
        return None
    return "alpha (transparency) channel dropped, though it varies (OCT b-scans are gray intensities)"


def note(metadata: dict[str, Any], text: str | None) -> None:
    """Record what the reader changed in ``metadata["notes"]`` and say it (a UserWarning).

    Parameters
    ----------
    metadata : dict
        The image's metadata (``"path"`` names the file in the warning).
    text : str or None
        The note; None or empty does nothing.
    """
    if text:
        metadata.setdefault("notes", []).append(text)
        path = metadata.get("path", "")
        warnings.warn(f"{Path(path).name + ': ' if path else ''}{text}", UserWarning, stacklevel=3)


def visible_files(folder: Path) -> list[Path]:
    """The regular, not hidden files of a folder (dot files and our temporary outputs are hidden).

    Parameters
    ----------
    folder : Path

    Returns
    -------
    list of Path
        Sorted by name.
    """
    return sorted(f for f in folder.iterdir() if not f.name.startswith(".") and f.is_file())


def _squeeze_axes(data: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, str]:
    """Drop singleton axes and check a (H, W) b-scan or (N, H, W) stack remains."""
    keep = [i for i, n in enumerate(data.shape) if n != 1 or axes[i] in "YX"]
    if len(keep) != data.ndim:
        data = data.reshape([data.shape[i] for i in keep])
        axes = "".join(axes[i] for i in keep)
    if data.ndim not in (2, 3):
        raise OctReadError(path, f"expected a b-scan (2D) or a stack of b-scans (3D), got shape {data.shape} "
                                 f"(axes {axes!r})")
    return data, axes


def _validated(image: OctImage, path: Path) -> OctImage:
    """Check what a reader produced: numeric, 2D/3D, non-empty, scale/labels matching the rank."""
    data = image.data
    if data.dtype.kind not in "biuf":
        raise OctReadError(path, f"pixel type {data.dtype} is not a grayscale intensity")
    if data.ndim not in (2, 3) or data.size == 0:
        raise OctReadError(path, f"expected a non-empty b-scan or stack of b-scans, got shape {data.shape}")
    if not (len(image.scale) == len(image.units) == len(image.axis_labels) == data.ndim):
        raise OctReadError(path, "internal error: scale/units/axis_labels do not match the image rank")
    return image


class _LogErrors(logging.Handler):
    """Collect ERROR records of one library logger while the context is open."""

    def __init__(self, name: str) -> None:
        super().__init__(level=logging.ERROR)
        self.logger = logging.getLogger(name)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _LogErrors:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


def _short(exc: BaseException) -> str:
    """First line of an exception message with its type, for one-line user-facing reasons."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _default_labels(ndim: int) -> tuple[str, ...]:
    """Axis labels (docs/conventions.md) for a b-scan or a stack."""
    return AXES_3D if ndim == 3 else AXES_2D


def _per_axis(units: str | tuple[str, ...] | list[str] | None, ndim: int) -> tuple[str, ...]:
    """One unit string per axis (napari/pint units become their short names)."""
    if units is None:
        return (PIXEL,) * ndim
    if isinstance(units, str):
        return (units,) * ndim
    names = tuple(_unit_name(u) for u in units)
    if len(names) < ndim:
        raise ValueError(f"{len(names)} units given for a {ndim}D image")
    return names[-ndim:]


def _unit_name(unit: Any) -> str:
    """'micrometer' for a pint Unit or a string; pixel for None."""
    if unit is None:
        return PIXEL
    return str(unit)


def _jsonable(obj: Any) -> Any:
    """Plain JSON-friendly copy (dicts, lists, str, numbers) of vendor metadata; arrays summarised."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f"<array shape={obj.shape} dtype={obj.dtype}>"
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)
