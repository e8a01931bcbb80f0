"""Vendor OCT files: Heidelberg .vol/.e2e/HEYEX XML (eyepy), Topcon/Zeiss/Bioptigen (OCT-Converter), DICOM."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..intensity import log_display
from ._common import (
    _UNIT_TO_UM,
    _VENDOR_EXTRA,
    _VENDOR_INVALID,
    AXES_3D,
    PIXEL,
    UM,
    OctImage,
    OctReadError,
    _jsonable,
    _short,
)

#: eyepy's layer colours (eyepy.config.layer_colors), as hex RGB: lines look as in eyepy's plots.
BOUNDARY_COLORS: dict[str, str] = {
    "ILM": "#F668C2", "RPE": "#97A431", "BM": "#F77189", "RPE_vendor": "#97A431", "RNFL": "#3BA3EC",
    "NFL": "#3BA3EC", "GCL": "#34AF84", "IPL": "#BB9832", "INL": "#E866F4", "OPL": "#38AABF",
    "ONL": "#50B131", "ELM": "#E68332", "PR1": "#36ADA4", "EZ": "#36ADA4", "PR2": "#A48CF4",
    "IZ": "#A48CF4",
}
DEFAULT_BOUNDARY_COLOR = "#FF0000"
#: Heidelberg scan pattern codes (.vol header, .e2e/.xml b-scan records).
SCAN_PATTERNS = {0: "unknown", 1: "line", 2: "circle", 3: "volume", 4: "fast volume", 5: "radial"}


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
    source = {**_jsonable(header), "bscans": _jsonable(bscan_headers),
              "scan_pattern_name": SCAN_PATTERNS.get(int(parsed.scan_pattern), "unknown"),
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
    first = (dict(ev.meta).get("bscan_meta") or [{}])[0]
    pattern = first.get("scan_pattern") if hasattr(first, "get") else None
    if isinstance(pattern, (int, np.integer)):
        source.update(scan_pattern=int(pattern), scan_pattern_name=SCAN_PATTERNS.get(int(pattern), "unknown"))
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
    metadata: dict[str, Any] = {"path": str(path), "format": fmt, "source": source, **_scan_fields(source)}
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


def _scan_fields(source: dict) -> dict[str, Any]:
    """``laterality`` (as the vendor writes it: OD/OS, R/L) and ``scan_pattern`` (its name where known)
    of a vendor source record, for the top level of the metadata (outputs keep them)."""
    out: dict[str, Any] = {}
    laterality = next((source[k] for k in ("laterality", "Laterality", "scan_position")
                       if source.get(k) not in (None, "")), None)
    if laterality is not None:
        out["laterality"] = str(laterality).rsplit(".", 1)[-1]  # eyepy's enum: "LateralityEnum.OD"
    pattern = source.get("scan_pattern_name") or source.get("scan_pattern")
    if pattern not in (None, ""):
        out["scan_pattern"] = pattern
    return out


def _vendor_boundaries(vendor: dict[str, np.ndarray], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Rename vendor layers to the names of docs/conventions.md (BM -> RPE), drop empty ones, ILM and RPE first."""
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
    # docs/conventions.md: RPE is the outer retinal boundary, what Heidelberg/Topcon label BM
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

