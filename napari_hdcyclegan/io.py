"""Read OCT b-scans and volumes (TIFF, PNG/JPEG, folders, vendor files) and write scaled TIFFs.

napari-free core shared by the reader plugin and the CLI. Vendor readers (eyepy, OCT-Converter) are
imported inside the functions that need them, so importing this module stays cheap and never pulls
in OpenCV (which OCT-Converter imports at module level).

Conventions: data is ``(N, H, W)`` (b-scans on axis 0) or ``(H, W)``; rows are depth from the top;
``scale`` is µm per pixel per axis (``units`` says ``"um"``, or ``"pixel"`` where the file does not
tell); linear-intensity vendor data (.vol, .e2e) is log-display transformed by default (see
:func:`napari_hdcyclegan.intensity.log_display`); boundaries are heights (float rows) per A-scan,
``(N, W)``, NaN where missing, named ``ILM`` / ``RPE`` (the vendor's BM) as in CONVENTIONS.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .intensity import log_display

TIFF_SUFFIXES = (".tif", ".tiff")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PLAIN_SUFFIXES
VENDOR_SUFFIXES = (".vol", ".e2e", ".xml", ".fds", ".fda", ".img", ".oct", ".dcm")
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES + VENDOR_SUFFIXES

AXES_3D = ("b-scan", "depth", "lateral")
AXES_2D = ("depth", "lateral")
UM, PIXEL = "um", "pixel"
#: Key of the JSON blob (axis labels, metadata, exact scale) in ImageJ "Properties" written here.
_PROPERTY_KEY = "napari_hdcyclegan"
#: Heidelberg/eyepy mark "no data" in linear float exports with float32 max (.vol) or values > 1.99 (.e2e).
_VENDOR_INVALID = 3.0e38
_VENDOR_EXTRA = "pip install 'napari-hdcyclegan[vendor]'"

_FORMAT_NAMES = {
    ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG",
    ".vol": "Heidelberg .vol", ".e2e": "Heidelberg .e2e", ".xml": "Heidelberg HEYEX XML",
    ".fds": "Topcon .fds", ".fda": "Topcon .fda", ".img": "Zeiss .img", ".oct": "Bioptigen/Optovue .oct",
    ".dcm": "DICOM",
}
_UNIT_TO_UM = {
    "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3,
    "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6,
}


class OctReadError(ValueError):
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


# --------------------------------------------------------------------------------------------------
# entry points


def is_supported(path: str | os.PathLike) -> bool:
    """Cheap check (suffix, folder content, HEYEX XML sniff) whether :func:`read_oct` should try ``path``."""
    p = Path(path)
    if p.is_dir():
        return any(_is_image_file(f) or (f.suffix.lower() == ".xml" and _looks_like_heyex_xml(f))
                   for f in p.iterdir())
    suffix = p.suffix.lower()
    if suffix == ".xml":
        return _looks_like_heyex_xml(p)
    return suffix in SUPPORTED_SUFFIXES


def read_oct(path: str | os.PathLike, *, display: bool = True) -> OctImage:
    """Read an OCT b-scan, stack or vendor volume; ``display=False`` keeps linear vendor intensities."""
    p = Path(path)
    if not p.exists():
        raise OctReadError(p, "no such file or folder")
    if p.is_dir():
        heyex = [f for f in p.glob("*.xml") if _looks_like_heyex_xml(f)]
        # a HEYEX XML export is a folder of PNGs (b-scans and localizer) described by one XML file
        return read_oct(heyex[0], display=display) if len(heyex) == 1 else _read_folder(p)
    if p.stat().st_size == 0:
        raise OctReadError(p, "the file is empty (0 bytes)")
    suffix = p.suffix.lower()
    readers = {
        **{s: _read_tiff for s in TIFF_SUFFIXES},
        **{s: _read_plain for s in PLAIN_SUFFIXES},
        ".vol": lambda q: _read_vol(q, display),
        ".e2e": lambda q: _read_eyepy(q, "heidelberg-e2e", display),
        ".xml": lambda q: _read_eyepy(q, "heidelberg-xml", display),
        ".fds": lambda q: _read_octconverter(q, "topcon-fds"),
        ".fda": lambda q: _read_octconverter(q, "topcon-fda"),
        ".img": lambda q: _read_octconverter(q, "zeiss-img"),
        ".oct": lambda q: _read_octconverter(q, "bioptigen-oct"),
        ".dcm": _read_dicom,
    }
    if suffix not in readers:
        raise OctReadError(p, f"unsupported file type {suffix or '(no suffix)'!r}; "
                              f"supported: {', '.join(SUPPORTED_SUFFIXES)} or a folder of b-scans")
    try:
        image = readers[suffix](p)
    except OctReadError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a corrupt file fails in many library-specific ways: report them as one
        kind = _FORMAT_NAMES.get(suffix, suffix)
        raise OctReadError(p, f"corrupt, truncated or not a {kind} file ({_short(exc)})") from exc
    return _validated(image, p)


def write_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    scale: tuple[float, ...] | None = None,
    units: str | tuple[str, ...] = UM,
    axis_labels: tuple[str, ...] | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Write a 2D b-scan or 3D stack as an ImageJ TIFF that keeps the scale; returns the path written."""
    import tifffile

    arr = np.asarray(data)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"write_tiff expects a non-empty 2D b-scan or 3D stack, got shape {arr.shape}")
    arr = _imagej_dtype(arr)
    ndim = arr.ndim
    scale = tuple(float(s) for s in (scale if scale is not None else (1.0,) * ndim))[-ndim:]
    unit_list = _per_axis(units, ndim)
    if len(scale) != ndim:
        raise ValueError(f"scale {scale} does not match a {ndim}D image")
    if not all(math.isfinite(s) and s > 0 for s in scale):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    factors = [_UNIT_TO_UM.get(str(u).lower()) for u in unit_list]
    scale_um = tuple(s * f if f is not None else s for s, f in zip(scale, factors))
    out_units = tuple(UM if f is not None else PIXEL for f in factors)
    labels = tuple(axis_labels) if axis_labels is not None else (AXES_3D if ndim == 3 else AXES_2D)
    extra = {
        "axis_labels": list(labels[-ndim:]),
        "units": list(out_units),
        "scale": list(scale_um),
        "metadata": _jsonable(metadata or {}),
    }
    ij_meta: dict[str, Any] = {"axes": "ZYX" if ndim == 3 else "YX",
                               "Properties": {_PROPERTY_KEY: json.dumps(extra, default=str)}}
    lateral_um, axial_um = scale_um[-1], scale_um[-2]
    calibrated = out_units[-1] == UM and out_units[-2] == UM
    if calibrated:
        ij_meta["unit"] = "micron"
    if ndim == 3 and out_units[0] == UM:
        ij_meta["spacing"] = scale_um[0]
    resolution = (1.0 / lateral_um, 1.0 / axial_um) if calibrated else None
    path = os.fspath(path)
    tifffile.imwrite(path, arr, imagej=True, resolution=resolution, metadata=ij_meta)
    return path


# --------------------------------------------------------------------------------------------------
# TIFF


def _read_tiff(path: Path) -> OctImage:
    """TIFF via tifffile: memory-mapped when uncompressed, ImageJ/OME/centimetre scale honoured."""
    import tifffile

    with _LogErrors("tifffile") as errors:
        try:
            tif = tifffile.TiffFile(path)
        except tifffile.TiffFileError as exc:
            raise OctReadError(path, f"not a valid TIFF file ({_short(exc)})") from exc
        image = _read_tiff_file(path, tif)
    if errors.messages:
        # tifffile logs (rather than raises) broken page chains and shapes: a truncated file would
        # otherwise come back silently with fewer b-scans
        raise OctReadError(path, f"corrupt or truncated TIFF ({errors.messages[0]})")
    return image


def _read_tiff_file(path: Path, tif: Any) -> OctImage:
    """Pixels, scale and metadata of an open TiffFile (see :func:`_read_tiff`)."""
    with tif:
        if not tif.series or not tif.pages:
            raise OctReadError(path, "the TIFF holds no images")
        series = tif.series[0]
        axes = series.axes
        page = tif.pages.first
        fmt = "ome-tiff" if tif.is_ome else "imagej-tiff" if tif.is_imagej else "tiff"
        scale_zyx, ours = _tiff_scale(tif, page)
        source: dict[str, Any] = {"axes": axes, "shape": list(series.shape), "dtype": str(series.dtype),
                                  "compression": page.compression.name}
        if tif.is_imagej:
            source["imagej"] = {k: v for k, v in (tif.imagej_metadata or {}).items() if k != "Properties"}
        if tif.is_ome:
            source["ome_xml"] = tif.ome_metadata
        try:
            data, mapped = _tiff_pixels(path, tif, series)
        except Exception as exc:
            raise OctReadError(path, f"corrupt or truncated TIFF ({_short(exc)})") from exc
    source["memory_mapped"] = mapped
    data, axes = _to_gray(data, axes, path)
    data, axes = _squeeze_axes(data, axes, path)
    if ours and len(ours.get("axis_labels", [])) == 3 and data.ndim == 2:
        data, axes = data[None], "Z" + axes  # a one-b-scan stack we wrote: keep its b-scan axis
    metadata = dict(ours.get("metadata", {})) if ours else {}
    metadata.update(path=str(path), format=fmt, source=source)
    z, y, x = scale_zyx
    scale_units = [z, y, x][-data.ndim:]
    scale = tuple(v[0] if v else 1.0 for v in scale_units)
    units = tuple(UM if v else PIXEL for v in scale_units)
    labels = tuple(ours["axis_labels"]) if ours and len(ours.get("axis_labels", [])) == data.ndim else None
    return OctImage(data, scale, units, labels or _default_labels(data.ndim), metadata)


def _tiff_pixels(path: Path, tif: Any, series: Any) -> tuple[np.ndarray, bool]:
    """Memory-map uncompressed contiguous data; otherwise decode (tifffile reads page by page)."""
    import tifffile

    if series.dataoffset is not None:
        try:
            return tifffile.memmap(path, series=0, mode="r"), True
        except (ValueError, OSError):
            pass  # e.g. non-native byte order or a layout numpy cannot map: decode instead
    return series.asarray(), False


def _tiff_scale(tif: Any, page: Any) -> tuple[list[tuple[float] | None], dict | None]:
    """(z, y, x) µm per pixel (None where unknown) and our own JSON block when this module wrote it."""
    z = y = x = None
    ours = None
    if tif.is_imagej:
        ij = tif.imagej_metadata or {}
        props = ij.get("Properties") or {}
        if _PROPERTY_KEY in props:
            try:
                ours = json.loads(props[_PROPERTY_KEY])
            except (TypeError, ValueError):
                ours = None
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
    return [z, y, x], ours


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
    out = []
    for ax in "ZYX":
        size = pixels.get(f"PhysicalSize{ax}")
        factor = _UNIT_TO_UM.get(str(pixels.get(f"PhysicalSize{ax}Unit", "µm")).lower())
        ok = size is not None and factor is not None and float(size) > 0
        out.append((float(size) * factor,) if ok else None)
    return tuple(out)


def _rational(page: Any, name: str) -> float | None:
    """A TIFF resolution tag as a float (pixels per unit), None when absent or degenerate."""
    tag = page.tags.get(name)
    if tag is None:
        return None
    num, den = tag.value
    value = num / den if den else 0.0
    return value if value > 0 and math.isfinite(value) else None


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
    raise ValueError(f"cannot write dtype {arr.dtype} to TIFF")


# --------------------------------------------------------------------------------------------------
# PNG / JPEG and folders


def _read_plain(path: Path) -> OctImage:
    """PNG/JPEG b-scan via imageio (RGB/RGBA converted to gray)."""
    import imageio.v3 as iio

    try:
        arr = np.asarray(iio.imread(path))
    except Exception as exc:
        kind = path.suffix.lstrip(".").upper()
        raise OctReadError(path, f"corrupt, truncated or not a {kind} image ({_short(exc)})") from exc
    if arr.ndim == 3 and arr.shape[-1] == 2:
        arr = arr[..., 0]  # gray + alpha
    axes = "YXS" if arr.ndim == 3 and arr.shape[-1] in (3, 4) else "YX"
    data, axes = _to_gray(arr, axes, path)
    data, _ = _squeeze_axes(data, axes, path)
    meta = {"path": str(path), "format": path.suffix.lower().lstrip(".").replace("jpg", "jpeg"),
            "source": {"shape": list(arr.shape), "dtype": str(arr.dtype)}}
    return OctImage(data, (1.0,) * data.ndim, (PIXEL,) * data.ndim, _default_labels(data.ndim), meta)


def _read_folder(folder: Path) -> OctImage:
    """All b-scan images of a folder, naturally sorted, stacked along axis 0 (same shape required)."""
    files = sorted((f for f in folder.iterdir() if _is_image_file(f)), key=_natural_key)
    if not files:
        raise OctReadError(folder, f"the folder holds no b-scan images ({', '.join(IMAGE_SUFFIXES)})")
    images = [read_oct(f) for f in files]
    first = images[0]
    for f, im in zip(files, images):
        if im.data.ndim != 2:
            raise OctReadError(folder, f"{f.name} has shape {im.data.shape}; a folder is read as a stack "
                                       "of 2D b-scans")
        if im.data.shape != first.data.shape:
            raise OctReadError(folder, f"b-scans differ in shape: {files[0].name} is {first.data.shape}, "
                                       f"{f.name} is {im.data.shape}; all b-scans of a folder must have "
                                       "the same shape")
    data = np.stack([im.data for im in images])
    meta = {"path": str(folder), "format": "folder", "files": [f.name for f in files],
            "source": first.metadata.get("source", {})}
    return OctImage(data, (1.0, *first.scale), (PIXEL, *first.units), AXES_3D, meta)


def _is_image_file(path: Path) -> bool:
    """A visible regular file with a b-scan image suffix."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _natural_key(path: Path) -> list:
    """Sort key so that ``b2.png`` comes before ``b10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


# --------------------------------------------------------------------------------------------------
# vendor formats


def _read_vol(path: Path, display: bool) -> OctImage:
    """Heidelberg .vol via eyepy's parser (works for circle and radial scans too, unlike EyeVolume)."""
    with open(path, "rb") as fh:
        magic = fh.read(12)
    if not magic.startswith(b"HSF-OCT-"):
        raise OctReadError(path, f"not a Heidelberg .vol file (starts with {magic[:8]!r}, expected b'HSF-OCT-')")
    HeVolReader = _import_vendor(path, "eyepy.io.he.vol_reader", "HeVolReader", "eyepy")
    SEG_MAPPING = _import_vendor(path, "eyepy.io.he.vol_reader", "SEG_MAPPING", "eyepy")
    try:
        parsed = HeVolReader(path).parsed_file
    except Exception as exc:
        raise OctReadError(path, f"corrupt or truncated Heidelberg .vol file ({_short(exc)})") from exc
    if not parsed.bscans:
        raise OctReadError(path, "the .vol file holds no b-scans")
    linear = np.stack([np.asarray(b.data, dtype=np.float32) for b in parsed.bscans])
    linear[~np.isfinite(linear) | (linear >= _VENDOR_INVALID)] = 0.0  # "no data" marker -> black
    segs = [np.asarray(b.layer_segmentations, dtype=np.float32).reshape(-1, parsed.size_x) for b in parsed.bscans]
    n_layers = max(s.shape[0] for s in segs)
    heights = np.full((n_layers, len(segs), parsed.size_x), np.nan, dtype=np.float32)
    for i, s in enumerate(segs):
        heights[: s.shape[0], i] = s
    heights[~np.isfinite(heights) | (heights >= _VENDOR_INVALID)] = np.nan
    vendor = {name: heights[i] for name, i in SEG_MAPPING.items() if i < n_layers}
    header = {k: v for k, v in parsed.items() if k not in ("_io", "bscans", "localizer") and not k.startswith("__")}
    bscan_headers = [{k: b[k] for k in ("start_x", "start_y", "end_x", "end_y", "quality", "num_seg")}
                     for b in parsed.bscans]
    patterns = {0: "unknown", 1: "line", 2: "circle", 3: "volume", 4: "fast volume", 5: "radial"}
    source = {**_jsonable(header), "bscans": _jsonable(bscan_headers),
              "scan_pattern_name": patterns.get(int(parsed.scan_pattern), "unknown"),
              "localizer_shape": list(np.shape(parsed.localizer))}
    scale_mm = (float(parsed.distance), float(parsed.scale_y), float(parsed.scale_x))
    return _vendor_image(path, "heidelberg-vol", linear, scale_mm, vendor, source, display, linear_source=True)


def _read_eyepy(path: Path, fmt: str, display: bool) -> OctImage:
    """Heidelberg .e2e (first volume) or HEYEX .xml export through eyepy's readers."""
    if fmt == "heidelberg-xml" and not _looks_like_heyex_xml(path):
        raise OctReadError(path, "not a Heidelberg HEYEX XML export (no <HEYEX> element)")
    if fmt == "heidelberg-e2e":
        HeE2eReader = _import_vendor(path, "eyepy.io.he", "HeE2eReader", "eyepy")
        with HeE2eReader(path) as reader:
            ev = reader.volume
    else:
        HeXmlReader = _import_vendor(path, "eyepy.io.he", "HeXmlReader", "eyepy")
        ev = HeXmlReader(path).volume
    return _from_eyevolume(ev, path, fmt, display)


def _from_eyevolume(ev: Any, path: Path, fmt: str, display: bool) -> OctImage:
    """Convert an eyepy EyeVolume (raw intensities, mm scale, layer heights) into an OctImage."""
    transform = ev.meta.get("intensity_transform", "default") if hasattr(ev.meta, "get") else "default"
    linear_source = transform in ("vol", "e2e")
    if linear_source:
        raw = np.asarray(ev.raw_data, dtype=np.float32)
        # eyepy: .e2e marks empty regions with values > 1.99, .vol with float32 max
        raw[~np.isfinite(raw) | (raw > 1.99)] = 0.0
        data = raw
    else:
        data = np.asarray(ev.data)
    vendor = {name: np.asarray(layer.data, dtype=np.float32) for name, layer in ev.layers.items()}
    factor = _UNIT_TO_UM.get(str(ev.scale_unit).lower(), 1e3) / 1e3
    scale_mm = (ev.scale_z * factor, ev.scale_y * factor, ev.scale_x * factor)
    source = _jsonable({k: v for k, v in dict(ev.meta).items() if k != "bscan_meta"})
    return _vendor_image(path, fmt, data, scale_mm, vendor, source, display, linear_source)


def _read_octconverter(path: Path, fmt: str) -> OctImage:
    """Topcon .fds/.fda, Zeiss .img and Bioptigen .oct through OCT-Converter."""
    readers = _import_vendor(path, "oct_converter.readers", None, "oct-converter")
    if fmt == "bioptigen-oct":
        try:
            volumes = readers.BOCT(path).read_oct_volume()
        except Exception as exc:  # Optovue also uses .oct
            try:
                volumes = [readers.POCT(path).read_oct_volume()[0]]
                fmt = "optovue-oct"
            except Exception:
                raise OctReadError(path, f"neither a Bioptigen nor an Optovue .oct file ({_short(exc)})") from exc
        volume = volumes[0]
        # Bioptigen frames are stored (A-scans, depth): transpose to (depth, lateral)
        data = np.stack([np.asarray(b).T for b in volume.volume]) if fmt == "bioptigen-oct" else \
            np.stack([np.asarray(b) for b in volume.volume])
    else:
        cls = getattr(readers, {"topcon-fds": "FDS", "topcon-fda": "FDA", "zeiss-img": "IMG"}[fmt])
        volume = cls(path).read_oct_volume()
        data = np.stack([np.asarray(b) for b in volume.volume])
    spacing = getattr(volume, "pixel_spacing", None)
    # OCT-Converter orders pixel_spacing (lateral, b-scan spacing, axial) in mm
    scale_mm = (spacing[1], spacing[2], spacing[0]) if spacing else (None, None, None)
    h = data.shape[1]
    vendor = {}
    for name, rows in (getattr(volume, "contours", None) or {}).items():
        rows = np.asarray(rows, dtype=np.float32)
        if rows.shape == (data.shape[0], data.shape[2]):
            rows[(rows < 0) | (rows >= h)] = np.nan
            vendor[str(name)] = rows
    source = _jsonable({"metadata": getattr(volume, "metadata", None), "laterality": volume.laterality,
                        "acquisition_date": volume.acquisition_date, "oct_header": volume.oct_header})
    return _vendor_image(path, fmt, data, scale_mm, vendor, source, display=False, linear_source=False)


def _read_dicom(path: Path) -> OctImage:
    """OCT DICOM (OPT modality) through pydicom, the library OCT-Converter uses for DICOM."""
    pydicom = _import_vendor(path, "pydicom", None, "oct-converter (pydicom)")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise OctReadError(path, f"not a DICOM file ({_short(exc)})") from exc
    if str(getattr(ds, "Manufacturer", "")).startswith("Carl Zeiss Meditec"):
        raise OctReadError(path, "Zeiss DICOM stores obfuscated pixel data; export it as .img or TIFF")
    data = np.asarray(ds.pixel_array)
    if data.ndim == 2:
        data = data[None]
    spacing = _dicom_spacing(ds)
    source = {k: str(ds.get(k, "")) for k in ("Modality", "Manufacturer", "ManufacturerModelName",
                                              "SeriesDescription", "Laterality", "StudyDate")}
    return _vendor_image(path, "dicom", data, spacing, {}, source, display=False, linear_source=False)


def _dicom_spacing(ds: Any) -> tuple[float | None, float | None, float | None]:
    """(b-scan spacing, axial, lateral) in mm from PixelSpacing (row, column) and slice spacing."""
    row = col = between = None
    seq = ds.get("SharedFunctionalGroupsSequence")
    if seq:
        measures = seq[0].get("PixelMeasuresSequence")
        if measures:
            m = measures[0]
            if "PixelSpacing" in m:
                row, col = (float(v) for v in m.PixelSpacing)
            between = m.get("SpacingBetweenSlices") or m.get("SliceThickness")
    if row is None and "PixelSpacing" in ds:
        row, col = (float(v) for v in ds.PixelSpacing)
    if between is None:
        between = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    return (float(between) if between else None), row, col


def _vendor_image(
    path: Path, fmt: str, data: np.ndarray, scale_mm: tuple, vendor: dict[str, np.ndarray],
    source: dict, display: bool, linear_source: bool,
) -> OctImage:
    """Assemble an OctImage from vendor pixels (N, H, W), mm spacing and raw vendor layer heights."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise OctReadError(path, f"expected a stack of b-scans, got shape {data.shape}")
    linear = linear_source and not display
    metadata: dict[str, Any] = {"path": str(path), "format": fmt, "source": source}
    if linear_source and display:
        data = log_display(data)
        metadata["intensity_transform"] = "log_display"
        metadata["source_intensity"] = "linear"
    elif linear_source:
        metadata["source_intensity"] = "linear"
    scale, units = [], []
    for s in scale_mm:
        ok = s is not None and math.isfinite(float(s)) and float(s) > 0
        scale.append(float(s) * 1e3 if ok else 1.0)  # circle/line scans store distance 0: spacing unknown
        units.append(UM if ok else PIXEL)
    return OctImage(data, tuple(scale), tuple(units), AXES_3D, metadata,
                    _vendor_boundaries(vendor, data.shape), linear)


def _vendor_boundaries(vendor: dict[str, np.ndarray], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Rename vendor layers to CONVENTIONS names (BM -> RPE), drop empty ones, ILM and RPE first."""
    n, h, w = shape
    layers = {}
    for name, rows in vendor.items():
        rows = np.array(rows, dtype=np.float32).reshape(n, w)
        rows[~np.isfinite(rows) | (rows >= _VENDOR_INVALID)] = np.nan
        if np.isfinite(rows).any():
            layers[name] = rows
    out: dict[str, np.ndarray] = {}
    if "ILM" in layers:
        out["ILM"] = layers.pop("ILM")
    # CONVENTIONS: RPE is the outer retinal boundary, what Heidelberg/Topcon label BM
    outer = layers.pop("BM", None)
    vendor_rpe = layers.pop("RPE", None)
    if outer is not None:
        out["RPE"] = outer
        if vendor_rpe is not None:
            out["RPE_vendor"] = vendor_rpe
    elif vendor_rpe is not None:
        out["RPE"] = vendor_rpe
    out.update(layers)
    return out


def _import_vendor(path: Path, module: str, attr: str | None, package: str) -> Any:
    """Import an optional vendor reader, or explain how to install it."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise OctReadError(path, f"reading {path.suffix} files needs {package}, which is not installed "
                                 f"({exc}); install it with: {_VENDOR_EXTRA}") from exc
    return getattr(mod, attr) if attr else mod


def _looks_like_heyex_xml(path: Path) -> bool:
    """True when the first kilobytes of an .xml file contain HEYEX's root element."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b"<HEYEX" in head


# --------------------------------------------------------------------------------------------------
# shared helpers


def _to_gray(data: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, str]:
    """Collapse an RGB(A) sample axis ('S', last) to gray, keeping the dtype; identical channels exactly."""
    if "S" not in axes:
        return data, axes
    if axes[-1] != "S":  # planar RGB (separate colour planes): samples last
        i = axes.index("S")
        data, axes = np.moveaxis(data, i, -1), axes[:i] + axes[i + 1:] + "S"
    if data.shape[-1] not in (3, 4):
        raise OctReadError(path, f"unsupported colour layout (axes {axes!r}, shape {data.shape})")
    from skimage import color, util

    rgb = np.asarray(data)[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        gray = rgb[..., 0].copy()  # gray stored as RGB (common for exported b-scans): exact
    else:
        lum = color.rgb2gray(rgb)
        converters = {np.dtype(np.uint8): util.img_as_ubyte, np.dtype(np.uint16): util.img_as_uint}
        gray = converters.get(rgb.dtype, lambda a: a.astype(np.float32))(lum)
    return gray, axes[:-1]


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
    """CONVENTIONS axis labels for a b-scan or a stack."""
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
