"""PNG / JPEG b-scans and folders of them."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._common import (
    AXES_3D,
    IMAGE_SUFFIXES,
    PIXEL,
    OctImage,
    OctReadError,
    _default_labels,
    _short,
    _squeeze_axes,
    _to_gray,
    alpha_note,
    note,
    visible_files,
)


def _read_plain(path: Path) -> OctImage:
    """PNG/JPEG b-scan via imageio (RGB/RGBA converted to gray, with a note)."""
    import imageio.v3 as iio

    try:
        # Pillow hands a CMYK (print) JPEG over as 4 channels that read as RGB + alpha: C, M, Y are 0
        # for a gray image, which became black; ask for RGB instead
        cmyk = iio.immeta(path).get("mode") == "CMYK"
        # an EXIF orientation (phone and camera JPEGs) turns the pixels for display: read them as
        # viewers show the image, or the output (written without the tag) shows turned against the input
        arr = np.asarray(iio.imread(path, mode="RGB" if cmyk else None, rotate=True))
        turned = _exif_orientation(path) in range(2, 9)  # 1: as stored; other values are not orientations
    except Exception as exc:
        kind = path.suffix.lstrip(".").upper()
        raise OctReadError(path, f"corrupt, truncated or not a {kind} image ({_short(exc)})") from exc
    extra = "; ".join(n for n, on in (("CMYK (print) image converted to RGB", cmyk),
                                       ("turned or mirrored as its EXIF orientation says", turned)) if on) or None
    if arr.ndim == 3 and arr.shape[-1] == 2:
        arr, extra = arr[..., 0], alpha_note(arr[..., 1])  # gray + alpha
    axes = "YXS" if arr.ndim == 3 and arr.shape[-1] in (3, 4) else "YX"
    data, axes, change = _to_gray(arr, axes, path)
    change = "; ".join(c for c in (extra, change) if c)
    data, _ = _squeeze_axes(data, axes, path)
    meta = {"path": str(path), "format": path.suffix.lower().lstrip(".").replace("jpg", "jpeg"),
            "source": {"shape": list(arr.shape), "dtype": str(arr.dtype)}}
    note(meta, change)
    return OctImage(data, (1.0,) * data.ndim, (PIXEL,) * data.ndim, _default_labels(data.ndim), meta)


def _exif_orientation(path: Path) -> int:
    """The EXIF orientation tag of an image file (1: as stored; 0: none)."""
    from PIL import Image

    with Image.open(path) as im:
        return int(im.getexif().get(0x0112, 0))


def _read_folder(folder: Path) -> OctImage:
    """All b-scan images of a folder, naturally sorted, stacked along axis 0 (same shape required)."""
    files = sorted((f for f in visible_files(folder) if _is_image_file(f)), key=_natural_key)
    if not files:
        raise OctReadError(folder, f"the folder holds no b-scan images ({', '.join(IMAGE_SUFFIXES)})")
    image = _stack(files, folder, "a folder")
    image.metadata.update(path=str(folder), format="folder")
    return image


def read_stack(paths: Sequence[str | os.PathLike]) -> OctImage:
    """2D b-scan files stacked along axis 0 in the order given (napari's "Open Files as Stack")."""
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("read_stack needs at least one file")
    image = _stack(files, files[0], "a stack of files")
    image.metadata.update(path=str(files[0].parent), format="stack of files")
    return image


def _stack(files: list[Path], where: Path, what: str) -> OctImage:
    """``files`` read and stacked; ``where`` and ``what`` name the stack in a refusal."""
    from . import read_oct

    images = [_as_bscan(read_oct(f)) for f in files]
    first = images[0]
    for f, im in zip(files, images):
        if im.data.ndim != 2:
            raise OctReadError(where, f"{f.name} has shape {im.data.shape}: each file of {what} must hold "
                                      "one b-scan")
        if im.data.shape != first.data.shape or im.data.dtype != first.data.dtype:
            raise OctReadError(where, f"b-scans differ: {files[0].name} is {first.data.shape} "
                                      f"{first.data.dtype}, {f.name} is {im.data.shape} {im.data.dtype}; "
                                      f"all b-scans of {what} must have the same shape and type")
    data = np.stack([im.data for im in images])
    meta = {"files": [f.name for f in files], "source": first.metadata.get("source", {})}
    notes = sorted({n for im in images for n in im.metadata.get("notes", [])})
    if notes:
        meta["notes"] = notes
    return OctImage(data, (1.0, *first.scale), (PIXEL, *first.units), AXES_3D, meta)


def _as_bscan(image: OctImage) -> OctImage:
    """A one-b-scan stack (1, H, W) (a one-line .vol, a saved preview) as its (H, W) b-scan."""
    if image.data.ndim != 3 or image.data.shape[0] != 1:
        return image
    return OctImage(image.data[0], tuple(image.scale[1:]), tuple(image.units[1:]), tuple(image.axis_labels[1:]),
                    image.metadata)


def _is_image_file(path: Path) -> bool:
    """A visible regular file with a b-scan image suffix."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _natural_key(path: Path) -> list:
    """Sort key so that ``b2.png`` comes before ``b10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]
