"""The one registry of file formats: every suffix list (reader, CLI, training folders, manifest) derives from it.

``napari.yaml`` is static, so its reader ``filename_patterns`` are checked against
:data:`READER_PATTERNS` by tests/test_manifest.py.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FORMATS", "FORMAT_NAMES", "IMAGE_SUFFIXES", "PLAIN_SUFFIXES", "READER_PATTERNS", "SUPPORTED_SUFFIXES",
    "TIFF_SUFFIXES", "VENDOR_SUFFIXES", "Format", "suffixes",
]


@dataclass(frozen=True)
class Format:
    """A file suffix the reader opens.

    Attributes
    ----------
    suffix : str
        Lower-case, with the dot (``".tif"``).
    name : str
        What the format is called in messages and metadata.
    kind : {"tiff", "plain", "vendor"}
        ``tiff``: read and written with scale (io/tiff.py); ``plain``: PNG/JPEG b-scans, also an
        output format (io/plain.py); ``vendor``: device exports, read only (io/vendor.py).
    """

    suffix: str
    name: str
    kind: str


FORMATS: tuple[Format, ...] = (
    Format(".tif", "TIFF", "tiff"),
    Format(".tiff", "TIFF", "tiff"),
    Format(".png", "PNG", "plain"),
    Format(".jpg", "JPEG", "plain"),
    Format(".jpeg", "JPEG", "plain"),
    Format(".vol", "Heidelberg .vol", "vendor"),
    Format(".e2e", "Heidelberg .e2e", "vendor"),
    Format(".xml", "Heidelberg HEYEX XML", "vendor"),
    Format(".fds", "Topcon .fds", "vendor"),
    Format(".fda", "Topcon .fda", "vendor"),
    Format(".img", "Zeiss .img", "vendor"),
    Format(".oct", "Bioptigen/Optovue .oct", "vendor"),
    Format(".dcm", "DICOM", "vendor"),
)


def suffixes(*kinds: str) -> tuple[str, ...]:
    """The suffixes of the formats of ``kinds`` (all formats when none is given), in registry order.

    Parameters
    ----------
    *kinds : str
        Format kinds (``"tiff"``, ``"plain"``, ...).

    Returns
    -------
    tuple of str
        Lower-case suffixes with their dot.
    """
    return tuple(f.suffix for f in FORMATS if not kinds or f.kind in kinds)


TIFF_SUFFIXES = suffixes("tiff")
PLAIN_SUFFIXES = suffixes("plain")
#: Single images a folder of b-scans may hold; also the CLI's output formats.
IMAGE_SUFFIXES = suffixes("tiff", "plain")
VENDOR_SUFFIXES = suffixes("vendor")
SUPPORTED_SUFFIXES = suffixes()
FORMAT_NAMES = {f.suffix: f.name for f in FORMATS}
#: The reader's ``filename_patterns`` in napari.yaml.
READER_PATTERNS = tuple(f"*{s}" for s in SUPPORTED_SUFFIXES)
