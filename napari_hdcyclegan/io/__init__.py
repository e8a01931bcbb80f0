"""Read OCT b-scans and volumes (TIFF, PNG/JPEG, folders, vendor files) and write scaled TIFFs.

napari-free core shared by the reader plugin and the CLI. Vendor readers (eyepy, OCT-Converter) are
imported inside the functions that need them, so importing this module stays cheap and never pulls
in OpenCV (which OCT-Converter imports at module level).

Conventions: data is ``(N, H, W)`` (b-scans on axis 0) or ``(H, W)``; rows are depth from the top;
``scale`` is µm per pixel per axis (``units`` says ``"um"``, or ``"pixel"`` where the file does not
tell); linear-intensity vendor data (.vol, .e2e) is log-display transformed by default (see
:func:`napari_hdcyclegan.intensity.log_display`); boundaries are heights (float rows) per A-scan,
``(N, W)``, NaN where missing, named ``ILM`` / ``RPE`` (the vendor's BM) as in docs/conventions.md.

Modules: ``tiff`` (TIFF in), ``tiff_write`` (TIFF out), ``tiff_block`` (the JSON block written TIFFs
carry: exact scale, metadata, boundary lines), ``plain`` (PNG/JPEG, folders), ``vendor`` (.vol, .e2e, XML,
.fds/.fda/.img/.oct, DICOM), ``atomic`` (outputs written under a temporary name, then renamed).
What a reader changed (colour to gray, planes read as b-scans) is in ``metadata["notes"]`` and said
as a UserWarning.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._common import (  # noqa: F401  (re-exported: the package's public and test-facing names)
    _FORMAT_NAMES,
    _PROPERTY_KEY,
    _UNIT_TO_UM,
    AXES_2D,
    AXES_3D,
    IMAGE_SUFFIXES,
    PIXEL,
    PLAIN_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TIFF_SUFFIXES,
    UM,
    VENDOR_SUFFIXES,
    OctImage,
    OctReadError,
    _jsonable,
    _short,
    _validated,
    um_per_pixel,
    visible_files,
)
from .atomic import atomic_output  # noqa: F401
from .plain import _is_image_file, _read_folder, _read_plain, read_stack  # noqa: F401
from .tiff import _read_tiff
from .tiff_write import write_tiff, write_tiff_pages  # noqa: F401
from .vendor import (  # noqa: F401
    _dicom_spacing,
    _from_eyevolume,
    _looks_like_heyex_xml,
    _read_dicom,
    _read_eyepy,
    _read_octconverter,
    _read_vol,
    _vendor_boundaries,
    _vendor_image,
)

__all__ = ["AXES_2D", "AXES_3D", "IMAGE_SUFFIXES", "PIXEL", "PLAIN_SUFFIXES", "SUPPORTED_SUFFIXES", "TIFF_SUFFIXES",
           "UM", "VENDOR_SUFFIXES", "OctImage", "OctReadError", "atomic_output", "folder_files", "is_supported",
           "read_oct", "read_stack", "um_per_pixel", "visible_files", "write_tiff", "write_tiff_pages"]

# --------------------------------------------------------------------------------------------------
# entry points


def is_supported(path: str | os.PathLike) -> bool:
    """Cheap check (suffix, folder content, HEYEX XML sniff) whether :func:`read_oct` should try ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        A file or folder.

    Returns
    -------
    bool
    """
    p = Path(path)
    if p.is_dir():
        return any(_is_image_file(f) or (f.suffix.lower() == ".xml" and _looks_like_heyex_xml(f))
                   for f in visible_files(p))
    suffix = p.suffix.lower()
    if suffix == ".xml":
        return _looks_like_heyex_xml(p)
    return suffix in SUPPORTED_SUFFIXES


def folder_files(folder: str | os.PathLike) -> list[Path]:
    """The files of a folder the CLI denoises one by one: visible (no dot files), supported, sorted.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    list of Path
    """
    return [f for f in visible_files(Path(folder)) if is_supported(f)]


def read_oct(path: str | os.PathLike, *, display: bool = True) -> OctImage:
    """Read an OCT b-scan, stack or vendor volume; ``display=False`` keeps linear vendor intensities.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF, PNG/JPEG, vendor file or a folder of b-scans (or one HEYEX XML export).
    display : bool
        Log-display transform linear vendor intensities (:func:`napari_hdcyclegan.intensity.log_display`).

    Returns
    -------
    OctImage
        Data ``(H, W)`` or ``(N, H, W)``, scale in µm (or pixel), vendor boundaries, metadata.

    Raises
    ------
    OctReadError
        For a missing, empty, unsupported, corrupt or unreadable file.
    """
    p = Path(path)
    if not p.exists():
        raise OctReadError(p, "no such file or folder")
    if p.is_dir():
        heyex = [f for f in visible_files(p) if f.suffix.lower() == ".xml" and _looks_like_heyex_xml(f)]
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
