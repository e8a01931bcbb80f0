"""TIFF in: ImageJ, OME, shaped and plain TIFFs (writing: :mod:`.tiff_write`).

Every image series that shares the b-scan shape and type is read (a file appended to in
several writes holds several series); one planar-RGB page whose colour planes differ is a 3- or 4-b-scan
volume that was written without ``photometric="minisblack"`` and is read as b-scans; an unsigned-integer
min-is-white page is inverted to min-is-black, as it displays. These changes are recorded in
``metadata["notes"]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    _PROPERTY_KEY,
    _UNIT_TO_UM,
    PIXEL,
    UM,
    OctImage,
    OctReadError,
    _default_labels,
    _LogErrors,
    _short,
    _squeeze_axes,
    _to_gray,
    note,
)
from .tiff_block import block_display, block_translate, decode_boundaries, parse_block


def _read_tiff(path: Path) -> OctImage:
    """TIFF via tifffile: memory-mapped when uncompressed, ImageJ/OME/shaped/centimetre scale honoured."""
    import tifffile

    with _LogErrors("tifffile") as errors:
        try:
            tif = tifffile.TiffFile(path)
        except tifffile.TiffFileError as exc:
            raise OctReadError(path, f"not a valid TIFF file ({_short(exc)})") from exc
        try:
            image: OctImage | None = _read_tiff_file(path, tif)
        except OctReadError:
            if not errors.messages:
                raise
            image = None  # a page chain tifffile logged as broken explains the failure better
    if errors.messages or image is None:
        # tifffile logs (rather than raises) broken page chains and shapes: a truncated file would
        # otherwise come back silently with fewer b-scans
        raise OctReadError(path, f"corrupt or truncated TIFF ({errors.messages[0]})")
    return image


def _read_tiff_file(path: Path, tif: Any) -> OctImage:
    """Pixels, scale and metadata of an open TiffFile (see :func:`_read_tiff`)."""
    with tif:
        if not tif.series or not tif.pages:
            raise OctReadError(path, "the TIFF holds no images")
        series = _image_series(path, tif)
        _check_pages_described(path, tif)
        axes = series[0].axes if len(series) == 1 else "Z" + series[0].axes[-2:]
        page = tif.pages.first
        fmt = "ome-tiff" if tif.is_ome else "imagej-tiff" if tif.is_imagej else "tiff"
        scale_zyx, ours = _tiff_scale(tif, page)
        source: dict[str, Any] = {"axes": axes, "shape": [list(s.shape) for s in series] if len(series) > 1
                                  else list(series[0].shape), "dtype": str(series[0].dtype),
                                  "compression": page.compression.name}
        if tif.is_imagej:
            source["imagej"] = {k: v for k, v in (tif.imagej_metadata or {}).items() if k != "Properties"}
        if tif.is_ome:
            source["ome_xml"] = tif.ome_metadata
        _check_codecs(path, page)
        try:
            data, mapped = _tiff_pixels(path, tif, series)
        except Exception as exc:
            raise OctReadError(path, f"corrupt or truncated TIFF ({_short(exc)})") from exc
        inverted = _min_is_white(path, page, data)
    source["memory_mapped"] = mapped and inverted is None
    metadata = dict(ours.get("metadata", {})) if ours else {}
    metadata.update(path=str(path), format=fmt, source=source)
    metadata.pop("notes", None)  # notes of the file this one was made from do not apply to it
    if inverted is not None:
        data = inverted
        note(metadata, "min-is-white TIFF inverted to min-is-black (bright tissue stays bright, as the file displays)")
    if len(series) > 1:
        note(metadata, f"{len(series)} image series of the same b-scan shape read as one stack of "
                       f"{data.shape[0]} b-scans")
    data, axes = _planes_as_bscans(data, axes, metadata)
    data, axes, change = _to_gray(data, axes, path)
    note(metadata, change)
    # an axis before the image plane (not colour) says b-scan stack, even of one (1, H, W); a trailing
    # singleton (H, W, 1) is a channel, not b-scans
    stack = any(a not in "CS" for a in axes.split("Y")[0])
    data, axes = _squeeze_axes(data, axes, path)
    if (stack or (ours and len(ours.get("axis_labels", [])) == 3)) and data.ndim == 2:
        data, axes = data[None], "Z" + axes  # a one-b-scan stack: keep its b-scan axis, as written
    scale_units = scale_zyx[-data.ndim:]
    scale = tuple(v[0] if v else 1.0 for v in scale_units)
    units = tuple(UM if v else PIXEL for v in scale_units)
    labels = tuple(ours["axis_labels"]) if ours and len(ours.get("axis_labels", [])) == data.ndim else None
    boundaries, problems = decode_boundaries((ours or {}).get("boundaries"), data.shape)
    for problem in problems:
        note(metadata, problem)
    return OctImage(data, scale, units, labels or _default_labels(data.ndim), metadata, boundaries,
                    translate=block_translate(ours, data.ndim), display=block_display(ours, data.ndim))


def _min_is_white(path: Path, page: Any, data: np.ndarray) -> np.ndarray | None:
    """The pixels of a min-is-white page as they display (min-is-black, same dtype), or None for any other.

    Viewers show such a page inverted; denoising the stored values would hand back a negative.
    """
    import tifffile

    if page.photometric != tifffile.PHOTOMETRIC.MINISWHITE:
        return None
    if data.dtype.kind != "u":
        raise OctReadError(path, f"a min-is-white TIFF of {data.dtype} samples has no defined inversion; "
                                 "save it as min-is-black (photometric='minisblack')")
    top = min((1 << int(page.bitspersample)) - 1, int(np.iinfo(data.dtype).max))
    return (top - np.minimum(np.asarray(data), top)).astype(data.dtype)  # above ``top`` cannot be stored


def _check_pages_described(path: Path, tif: Any) -> None:
    """Refuse a file with more pages than its series describe (ImageJ ``images=3`` over 5 pages):
    the pages beyond would be b-scans dropped without a word."""
    described, pages = sum(len(s.pages) for s in tif.series), len(tif.pages)
    if pages > described:
        kind = "ImageJ" if tif.is_imagej else "OME" if tif.is_ome else "image"
        raise OctReadError(path, f"the TIFF holds {pages} pages but its {kind} metadata describes {described}: "
                                 "it may be corrupt or truncated, or its writer recorded the wrong shape; re-save it "
                                 "(e.g. from Fiji) so that no b-scan is left out")


def _check_codecs(path: Path, page: Any) -> None:
    """Refuse, naming the package, pages that tifffile decodes only with imagecodecs (LZW, JPEG, ...):
    its error would otherwise be reported as a corrupt file."""
    import tifffile

    missing = [f"{page.compression.name} compression"] if page.compression not in tifffile.TIFF.DECOMPRESSORS else []
    if page.predictor not in tifffile.TIFF.UNPREDICTORS:
        missing.append(f"{getattr(page.predictor, 'name', page.predictor)} predictor")
    if missing:
        raise OctReadError(path, f"the TIFF's {' and '.join(missing)} can only be decoded with the imagecodecs "
                                 "package, which is not installed; install it with: pip install imagecodecs")


def _image_series(path: Path, tif: Any) -> list[Any]:
    """The series to read: all full-resolution ones, which must share the b-scan shape and dtype."""
    series = [s for s in tif.series if not getattr(s.keyframe, "is_reduced", False)] or list(tif.series)
    if len(series) == 1:
        return series
    first = series[0]
    for s in series:
        plain = "S" not in s.axes and len([n for n in s.shape if n != 1]) <= 3
        if not plain or s.shape[-2:] != first.shape[-2:] or s.dtype != first.dtype:
            shapes = ", ".join(f"{tuple(x.shape)} {x.dtype}" for x in series[:4])
            raise OctReadError(path, f"the TIFF holds {len(series)} image series of different shapes or "
                                     f"types ({shapes}{', ...' if len(series) > 4 else ''}); save each "
                                     "volume to its own file")
    return series


def _planes_as_bscans(data: np.ndarray, axes: str, metadata: dict[str, Any]) -> tuple[np.ndarray, str]:
    """One planar RGB(A) page whose planes differ is a 3-4-b-scan volume: read it as b-scans."""
    if axes != "SYX" or data.shape[0] not in (3, 4):
        return data, axes
    planes = np.asarray(data)
    if all(np.array_equal(planes[0], p) for p in planes[1:]):
        note(metadata, f"planar RGB page with {len(planes)} identical planes read as one gray b-scan")
        return planes[0], "YX"
    note(metadata, f"planar RGB page read as a stack of {len(planes)} b-scans (a volume written without "
                   "photometric='minisblack'); check that this file is not a colour image")
    return data, "ZYX"


def _tiff_pixels(path: Path, tif: Any, series: list[Any]) -> tuple[np.ndarray, bool]:
    """Memory-map one uncompressed contiguous series; otherwise decode (tifffile reads page by page)."""
    import tifffile

    if len(series) > 1:
        h, w = series[0].shape[-2:]
        return np.concatenate([s.asarray().reshape(-1, h, w) for s in series]), False
    if series[0].dataoffset is not None:
        try:
            return tifffile.memmap(path, series=tif.series.index(series[0]), mode="r"), True
        except (ValueError, OSError):
            pass  # e.g. non-native byte order or a layout numpy cannot map: decode instead
    return series[0].asarray(), False


def _tiff_scale(tif: Any, page: Any) -> tuple[list[tuple[float] | None], dict | None]:
    """(z, y, x) µm per pixel (None where unknown) and our own JSON block when this module wrote it."""
    z = y = x = None
    ours = None
    if tif.is_imagej:
        ij = tif.imagej_metadata or {}
        props = ij.get("Properties") or {}
        ours = parse_block(props.get(_PROPERTY_KEY))
        factor = _UNIT_TO_UM.get(str(ij.get("unit", "")).strip().lower())
        if factor is not None:
            xres, yres = _rational(page, "XResolution"), _rational(page, "YResolution")
            x = (factor / xres,) if xres else None
            y = (factor / yres,) if yres else None
            if ij.get("spacing"):
                z = (float(ij["spacing"]) * factor,)
    elif tif.is_ome:
        z, y, x = _ome_scale(tif.ome_metadata)
    else:
        ours = _shaped_block(tif)
        # Only centimetre resolution is physical; inch DPI (72/96/300 from image editors) is print size.
        unit = page.tags.get("ResolutionUnit")
        if unit is not None and int(unit.value) == 3:
            xres, yres = _rational(page, "XResolution"), _rational(page, "YResolution")
            x = (1e4 / xres,) if xres else None
            y = (1e4 / yres,) if yres else None
    if ours and ours.get("scale"):
        # Exact floats we wrote ourselves, used only while they still agree with the tags.
        own = [float(o) for o in ours["scale"]][-3:]
        tags = [z, y, x][3 - len(own):]
        if all(t is None or math.isclose(t[0], o, rel_tol=1e-4) for t, o in zip(tags, own)):
            exact = [(o,) if t is not None else None for t, o in zip(tags, own)]
            z, y, x = [z, y, x][: 3 - len(own)] + exact
        if len(own) == 3 and z is None and tif.is_shaped and list(ours.get("units", []))[:1] == [UM]:
            z = (own[0],)  # a shaped TIFF we wrote has no tag for the b-scan spacing: our block holds it
    return [z, y, x], ours


def _shaped_block(tif: Any) -> dict | None:
    """Our JSON block in a shaped TIFF's description (written by :func:`write_tiff_pages`)."""
    if not tif.is_shaped:
        return None
    return parse_block(((tif.shaped_metadata or [{}])[0] or {}).get(_PROPERTY_KEY))


def _ome_scale(xml: str | None) -> tuple[tuple[float] | None, ...]:
    """PhysicalSizeZ/Y/X of the first OME image in µm (OME's default unit is µm)."""
    import tifffile

    if not xml:
        return None, None, None
    try:
        ome = tifffile.xml2dict(xml)["OME"]
    except Exception:
        return None, None, None
    image = ome.get("Image")
    image = image[0] if isinstance(image, list) else image
    pixels = (image or {}).get("Pixels", {})
    out: list[tuple[float] | None] = []
    for ax in "ZYX":
        size = pixels.get(f"PhysicalSize{ax}")
        factor = _UNIT_TO_UM.get(str(pixels.get(f"PhysicalSize{ax}Unit", "µm")).lower())
        if size is not None and factor is not None and float(size) > 0:
            out.append((float(size) * factor,))
        else:
            out.append(None)
    return tuple(out)


def _rational(page: Any, name: str) -> float | None:
    """A TIFF resolution tag as a float (pixels per unit), None when absent or degenerate."""
    tag = page.tags.get(name)
    if tag is None:
        return None
    num, den = tag.value
    value = num / den if den else 0.0
    return value if value > 0 and math.isfinite(value) else None
