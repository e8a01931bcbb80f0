"""The format registry and the one µm-per-pixel helper."""

from __future__ import annotations

import pytest

from napari_hdcyclegan.io import SUPPORTED_SUFFIXES, um_per_pixel
from napari_hdcyclegan.io.formats import FORMATS, IMAGE_SUFFIXES, VENDOR_SUFFIXES, suffixes


def test_every_suffix_list_derives_from_the_registry():
    assert SUPPORTED_SUFFIXES == tuple(f.suffix for f in FORMATS)
    assert set(IMAGE_SUFFIXES) | set(VENDOR_SUFFIXES) == set(SUPPORTED_SUFFIXES)
    assert suffixes("tiff") == (".tif", ".tiff")
    assert all(f.suffix == f.suffix.lower() and f.suffix.startswith(".") for f in FORMATS)


@pytest.mark.parametrize("scale, units, axis, expected", [
    ((60.0, 3.87, 11.45), ("um", "um", "um"), -2, 3.87),
    ((3.87, 11.45), ("µm", "µm"), -2, 3.87),
    ((0.5, 0.00387, 0.01145), ("mm", "mm", "mm"), 1, 3.87),
    ((1.0, 1.0), ("pixel", "pixel"), -2, None),
    ((0.0, 1.0), ("um", "um"), 0, None),
    (None, None, -2, None),
    ((1.0,), ("um",), -2, None),
])
def test_um_per_pixel(scale, units, axis, expected):
    got = um_per_pixel(scale, units, axis)
    assert got == (pytest.approx(expected) if expected is not None else None)
