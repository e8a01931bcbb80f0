"""Tests for napari_hdcyclegan.io: files written here, the shipped real .vol, and clear errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_hdcyclegan import io
from napari_hdcyclegan.io import OctReadError, read_oct, write_tiff

VOL = Path(io.__file__).resolve().parents[1] / "data" / "heidelberg_circle.vol"


def _stack(n: int = 3, h: int = 20, w: int = 30, dtype=np.uint8) -> np.ndarray:
    """A small stack whose b-scan i is filled around value 10 * i (so order is checkable)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 5, (n, h, w))
    return (base + 10 * np.arange(n)[:, None, None]).astype(dtype)


# ---------------------------------------------------------------- TIFF


def test_imagej_tiff_scale_units_labels_and_memmap(tmp_path):
    data = _stack()
    path = tmp_path / "vol.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 11.45, 1 / 3.87),
                     metadata={"spacing": 120.0, "unit": "micron", "axes": "ZYX"})
    im = read_oct(path)
    np.testing.assert_array_equal(im.data, data)
    assert im.scale == pytest.approx((120.0, 3.87, 11.45), rel=1e-6)
    assert im.units == ("um", "um", "um")
    assert im.axis_labels == ("b-scan", "depth", "lateral")
    assert isinstance(im.data, np.memmap)  # uncompressed: not loaded into memory
    assert im.metadata["format"] == "imagej-tiff" and im.metadata["path"] == str(path)
    assert im.metadata["source"]["imagej"]["spacing"] == 120.0


def test_imagej_tiff_in_mm_converted_to_um(tmp_path):
    path = tmp_path / "mm.tif"
    tifffile.imwrite(path, _stack(1)[0], imagej=True, resolution=(1 / 0.004, 1 / 0.002), metadata={"unit": "mm"})
    im = read_oct(path)
    assert im.data.ndim == 2
    assert im.scale == pytest.approx((2.0, 4.0))
    assert im.units == ("um", "um")


def test_compressed_tiff_read_page_by_page(tmp_path):
    data = _stack(dtype=np.uint16)
    path = tmp_path / "zip.tif"
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")
    im = read_oct(path)
    assert not isinstance(im.data, np.memmap)
    assert im.metadata["source"]["memory_mapped"] is False
    np.testing.assert_array_equal(im.data, data)
    assert im.units == ("pixel",) * 3 and im.scale == (1.0, 1.0, 1.0)


def test_ome_tiff_physical_size(tmp_path):
    data = _stack().astype(np.float32)
    path = tmp_path / "vol.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 11.45, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 3.87,
        "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 0.12, "PhysicalSizeZUnit": "mm"})
    im = read_oct(path)
    assert im.metadata["format"] == "ome-tiff"
    assert im.scale == pytest.approx((120.0, 3.87, 11.45))
    assert im.units == ("um", "um", "um")


def test_centimetre_resolution_honoured_inch_dpi_ignored(tmp_path):
    b = _stack(1)[0]
    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, b, resolution=(1e4 / 5.0, 1e4 / 2.0), resolutionunit="CENTIMETER")
    assert read_oct(cm).scale == pytest.approx((2.0, 5.0))
    dpi = tmp_path / "dpi.tif"  # 72 dpi from an image editor is print size, not pixel size
    tifffile.imwrite(dpi, b, resolution=(72.0, 72.0), resolutionunit="INCH")
    im = read_oct(dpi)
    assert im.scale == (1.0, 1.0) and im.units == ("pixel", "pixel")


def test_rgb_tiff_becomes_gray(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    im = read_oct(path)
    assert im.data.shape == (20, 30) and im.data.dtype == np.uint8
    assert 0 < im.data.mean() < 200


def test_lzw_tiff_without_imagecodecs_names_the_package(tmp_path):
    """tifffile decodes LZW (common in exported TIFFs) only with imagecodecs; without it the file was
    reported as corrupt or truncated."""
    from PIL import Image

    img = _stack(1)[0]
    Image.fromarray(img).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        with pytest.raises(OctReadError, match="LZW compression .*pip install imagecodecs") as info:
            read_oct(tmp_path / "lzw.tif")
        assert "corrupt" not in str(info.value)
    else:
        np.testing.assert_array_equal(read_oct(tmp_path / "lzw.tif").data, img)


def test_tiff_with_too_many_axes_is_an_error(tmp_path):
    path = tmp_path / "4d.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 8, 8), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(OctReadError, match="2D.*3D"):
        read_oct(path)


# ---------------------------------------------------------------- PNG / JPEG / folders


def test_png_gray_and_rgb(tmp_path):
    gray = _stack(1)[0]
    iio.imwrite(tmp_path / "g.png", gray)
    im = read_oct(tmp_path / "g.png")
    np.testing.assert_array_equal(im.data, gray)
    assert im.axis_labels == ("depth", "lateral") and im.units == ("pixel", "pixel")
    # gray stored as RGB: exact
    iio.imwrite(tmp_path / "grgb.png", np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_oct(tmp_path / "grgb.png").data, gray)
    # coloured RGB: luminance, dtype kept
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 1] = 255
    iio.imwrite(tmp_path / "c.png", rgb)
    im = read_oct(tmp_path / "c.png")
    assert im.data.shape == (20, 30) and im.data.dtype == np.uint8
    assert 150 < im.data.mean() < 200  # Rec. 709 green weight 0.7152
    # RGBA: alpha dropped
    iio.imwrite(tmp_path / "a.png", np.dstack([rgb, np.full((20, 30), 255, np.uint8)]))
    np.testing.assert_array_equal(read_oct(tmp_path / "a.png").data, im.data)



def test_a_varying_alpha_channel_is_dropped_with_a_note(tmp_path):
    gray = _stack(1)[0]
    alpha = np.full(gray.shape, 255, np.uint8)
    alpha[:, :5] = 0  # a transparent strip: dropping it loses something, so it is said
    iio.imwrite(tmp_path / "la.png", np.dstack([gray, alpha]))
    iio.imwrite(tmp_path / "rgba.png", np.dstack([gray, gray, gray, alpha]))
    for name in ("la.png", "rgba.png"):
        with pytest.warns(UserWarning, match="alpha .transparency. channel"):
            im = read_oct(tmp_path / name)
        np.testing.assert_array_equal(im.data, gray)
        assert any("alpha" in n for n in im.metadata["notes"])


def test_cmyk_jpeg_is_read_as_its_image_not_black(tmp_path):
    """Pillow gives a CMYK JPEG as 4 channels; read as RGB + alpha, a gray image (C = M = Y = 0) was black."""
    from PIL import Image

    img = np.tile(np.linspace(20, 230, 32, dtype=np.uint8), (16, 1))
    Image.fromarray(img).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    with pytest.warns(UserWarning, match="CMYK"):
        im = read_oct(tmp_path / "c.jpg")
    assert im.data.shape == img.shape and np.abs(im.data.astype(int) - img).mean() < 5


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_an_exif_orientation_is_applied_as_viewers_show_the_image(tmp_path, suffix):
    """A phone JPEG tagged "turn 90 degrees" was read as stored: its output showed turned against the input."""
    from PIL import Image

    img = np.zeros((16, 32), np.uint8)
    img[:4, :8] = 250  # top left as stored
    exif = Image.fromarray(img).getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the block at the top right
    Image.fromarray(img).save(tmp_path / f"t{suffix}", exif=exif.tobytes())
    with pytest.warns(UserWarning, match="EXIF orientation"):
        im = read_oct(tmp_path / f"t{suffix}")
    assert im.data.shape == (32, 16) and im.data[:4, -4:].mean() > 200 and im.data[:4, :4].mean() < 30
    Image.fromarray(img).save(tmp_path / f"plain{suffix}")
    np.testing.assert_array_equal(read_oct(tmp_path / f"plain{suffix}").data > 128, img > 128)


def test_jpeg(tmp_path):
    img = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (16, 1))
    iio.imwrite(tmp_path / "b.jpg", img)
    im = read_oct(tmp_path / "b.jpg")
    assert im.data.shape == (16, 32) and im.metadata["format"] == "jpeg"
    assert np.abs(im.data.astype(int) - img).mean() < 5


def test_folder_of_pngs_sorted_naturally(tmp_path):
    data = _stack(n=11)
    for i, b in enumerate(data):
        iio.imwrite(tmp_path / f"bscan{i}.png", b)  # bscan10 must come after bscan9
    (tmp_path / "notes.txt").write_text("ignored")
    im = read_oct(tmp_path)
    np.testing.assert_array_equal(im.data, data)
    assert im.axis_labels == ("b-scan", "depth", "lateral")
    assert im.metadata["files"][-2:] == ["bscan9.png", "bscan10.png"]
    assert im.metadata["format"] == "folder"


def test_mixed_shape_folder_is_a_clear_error(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros((20, 30), np.uint8))
    iio.imwrite(tmp_path / "b.png", np.zeros((21, 30), np.uint8))
    with pytest.raises(OctReadError, match=r"a\.png.*\(20, 30\).*b\.png.*\(21, 30\)"):
        read_oct(tmp_path)


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "x.txt").write_text("no images")
    with pytest.raises(OctReadError, match="no b-scan images"):
        read_oct(tmp_path)


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize("name", ["empty.tif", "empty.png", "empty.vol"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(OctReadError, match="empty") as info:
        read_oct(tmp_path / name)
    assert info.value.path == str(tmp_path / name)


@pytest.mark.parametrize("name", ["junk.tif", "junk.png", "junk.jpg", "junk.vol"])
def test_corrupt_file(tmp_path, name):
    (tmp_path / name).write_bytes(np.random.default_rng(1).bytes(2000))
    with pytest.raises(OctReadError) as info:
        read_oct(tmp_path / name)
    assert str(tmp_path / name) in str(info.value) and info.value.reason


def test_truncated_tiffs(tmp_path):
    data = _stack(n=4, h=64, w=64)
    for comp in (None, "zlib"):
        full = tmp_path / f"full_{comp}.tif"
        tifffile.imwrite(full, data, compression=comp, photometric="minisblack")
        cut = tmp_path / f"cut_{comp}.tif"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(OctReadError, match="corrupt or truncated|Error"):
            read_oct(cut)


def test_pages_beyond_the_imagej_description_are_an_error(tmp_path):
    """ImageJ metadata saying 3 images over 5 pages: the last 2 b-scans were dropped without a word."""
    full = tmp_path / "five.tif"
    tifffile.imwrite(full, _stack(n=5), imagej=True)
    said = full.read_bytes().replace(b"images=5", b"images=3").replace(b"channels=5", b"channels=3")
    (tmp_path / "three.tif").write_bytes(said)
    with pytest.raises(OctReadError, match="holds 5 pages but its ImageJ metadata describes 3"):
        read_oct(tmp_path / "three.tif")
    assert read_oct(full).data.shape[0] == 5


def test_truncated_vol(tmp_path):
    cut = tmp_path / "cut.vol"
    cut.write_bytes(VOL.read_bytes()[:100_000])
    with pytest.raises(OctReadError, match="corrupt or truncated"):
        read_oct(cut)


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(OctReadError, match="no such file"):
        read_oct(tmp_path / "nope.tif")
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(OctReadError, match="unsupported file type"):
        read_oct(tmp_path / "a.txt")
    assert isinstance(OctReadError("x", "y"), ValueError)


def test_non_heyex_xml_is_refused(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<?xml version='1.0'?><root/>")
    assert not io.is_supported(path)
    with pytest.raises(OctReadError, match="HEYEX"):
        read_oct(path)


def test_missing_oct_converter_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "scan.fds"
    path.write_bytes(b"FOCT" + bytes(100))
    monkeypatch.setitem(sys.modules, "oct_converter.readers", None)  # import now raises ImportError
    with pytest.raises(OctReadError, match=r"oct-converter.*pip install"):
        read_oct(path)


# ---------------------------------------------------------------- vendor: Heidelberg .vol (real file)


def test_heidelberg_vol_circle_scan():
    pytest.importorskip("eyepy")
    im = read_oct(VOL)
    assert im.data.shape == (1, 496, 768) and im.data.dtype == np.float32
    # header: ScaleY (axial) 3.8717 µm, ScaleX (lateral) 17.891 µm; circle scan has no b-scan spacing
    assert im.scale[1:] == pytest.approx((3.8717, 17.891), abs=1e-3)
    assert im.units == ("pixel", "um", "um")
    assert im.axis_labels == ("b-scan", "depth", "lateral")
    assert im.metadata["source"]["scan_pattern"] == 2
    assert im.metadata["source"]["scan_pattern_name"] == "circle"
    # linear vendor data gets the log display transform first
    assert im.metadata["intensity_transform"] == "log_display" and not im.linear
    assert 0.0 <= im.data.min() and im.data.max() <= 1.0 and 0.1 < im.data.mean() < 0.6
    ilm, rpe = im.boundaries["ILM"], im.boundaries["RPE"]
    assert ilm.shape == rpe.shape == (1, 768)
    assert np.isnan(ilm).sum() == 187  # vendor "invalid" (float32 max) A-scans become NaN
    assert np.isfinite(rpe).all() and np.nanmax(ilm) < 496
    assert list(im.boundaries)[:2] == ["ILM", "RPE"] and "BM" not in im.boundaries


def test_vol_boundaries_orientation():
    """ILM lies above (smaller row than) the RPE/BM wherever both are known, rows from the top."""
    pytest.importorskip("eyepy")
    im = read_oct(VOL)
    ilm, rpe = im.boundaries["ILM"][0], im.boundaries["RPE"][0]
    both = np.isfinite(ilm) & np.isfinite(rpe)
    assert both.sum() > 500
    assert np.all(ilm[both] < rpe[both])
    # and the image agrees: the retina between them is brighter than the vitreous above the ILM
    col = int(np.flatnonzero(both)[len(np.flatnonzero(both)) // 2])
    top, bottom = int(ilm[col]), int(rpe[col])
    assert im.data[0, top:bottom, col].mean() > im.data[0, : max(top - 5, 1), col].mean()


def test_vol_linear_on_request():
    pytest.importorskip("eyepy")
    im = read_oct(VOL, display=False)
    assert im.linear and im.metadata["source_intensity"] == "linear"
    assert im.data.max() <= 1.0 and np.median(im.data) < 0.05  # linear OCT intensity is mostly dark


def test_vendor_boundary_names():
    n, w = 2, 5
    rows = np.full((n, w), 10.0, np.float32)
    out = io._vendor_boundaries({"ILM": rows, "BM": rows + 50, "GCL": np.full((n, w), 3.4028235e38),
                                 "RNFL": rows + 5}, (n, 100, w))
    assert list(out) == ["ILM", "RPE", "RNFL"]  # BM -> RPE (docs/conventions.md), invalid-only layer dropped
    np.testing.assert_array_equal(out["RPE"], rows + 50)


def test_dicom_spacing(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    data = _stack(n=2, h=16, w=24)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.4"  # Ophthalmic Tomography Image
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer = "OPT", "Test"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 16, 24, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelSpacing = [0.0039, 0.0115]
    ds.SliceThickness = 0.12
    ds.PixelData = data.tobytes()
    path = tmp_path / "oct.dcm"
    ds.save_as(path, enforce_file_format=True)
    im = read_oct(path)
    np.testing.assert_array_equal(im.data, data)
    assert im.scale == pytest.approx((120.0, 3.9, 11.5))
    assert im.units == ("um", "um", "um") and im.metadata["format"] == "dicom"


# ---------------------------------------------------------------- writer


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int16])
def test_write_tiff_round_trip_keeps_scale(tmp_path, dtype):
    data = _stack(dtype=dtype)
    path = tmp_path / "out.tif"
    assert write_tiff(path, data, scale=(123.4, 3.8716698, 17.891099), metadata={"note": "x", "n": 3}) == str(path)
    im = read_oct(path)
    np.testing.assert_array_equal(im.data, data.astype(im.data.dtype))
    assert im.scale == (123.4, 3.8716698, 17.891099)  # exact, not rounded through TIFF rationals
    assert im.units == ("um", "um", "um") and im.axis_labels == ("b-scan", "depth", "lateral")
    assert im.metadata["note"] == "x" and im.metadata["n"] == 3
    assert tifffile.TiffFile(path).is_imagej  # Fiji opens it with the same calibration


def test_write_tiff_2d_mixed_units_labels_and_single_bscan(tmp_path):
    path = tmp_path / "b.tif"
    write_tiff(path, np.ones((8, 9), np.float32), scale=(0.0039, 0.0115), units="mm", axis_labels=("z", "x"))
    im = read_oct(path)
    assert im.scale == pytest.approx((3.9, 11.5)) and im.axis_labels == ("z", "x")
    one = tmp_path / "one.tif"
    write_tiff(one, np.ones((1, 8, 9), np.uint8), scale=(1.0, 3.87, 11.45), units=("pixel", "micrometer", "um"))
    im = read_oct(one)
    assert im.data.shape == (1, 8, 9)
    assert im.units == ("pixel", "um", "um") and im.scale == pytest.approx((1.0, 3.87, 11.45))


def test_write_tiff_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="2D"):
        write_tiff(tmp_path / "x.tif", np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="positive"):
        write_tiff(tmp_path / "x.tif", np.zeros((4, 4)), scale=(0.0, 1.0))


def test_import_is_light():
    """The core reader module imports no vendor library, napari, Qt or torch."""
    code = ("import sys, napari_hdcyclegan.io; "
            "bad = [m for m in ('eyepy', 'oct_converter', 'cv2', 'napari', 'torch', 'qtpy') if m in sys.modules]; "
            "assert not bad, bad")
    assert os.system(f'"{sys.executable}" -c "{code}"') == 0


# ---------------------------------------------------------------- vendor conversions on synthetic objects
# (no real .e2e/.xml/.fds/.fda/.img/.oct files are available: these check our side of the conversion)


def test_eyepy_volume_conversion_e2e_like():
    eyepy = pytest.importorskip("eyepy")
    n, h, w = 3, 40, 50
    raw = np.random.default_rng(0).random((n, h, w)).astype(np.float32) * 0.01
    raw[:, :, :3] = 2.0  # .e2e "no data" marker
    bscans = [eyepy.EyeBscanMeta(start_pos=(0, i * 0.12), end_pos=(w * 0.0115, i * 0.12), pos_unit="mm")
              for i in range(n)]
    meta = eyepy.EyeVolumeMeta(scale_x=0.0115, scale_y=0.0039, scale_z=0.12, scale_unit="mm",
                               intensity_transform="e2e", bscan_meta=bscans)
    ev = eyepy.EyeVolume(data=raw, meta=meta)
    ev.add_layer_annotation(np.full((n, w), 10.0), name="ILM")
    ev.add_layer_annotation(np.full((n, w), 30.0), name="BM")
    im = io._from_eyevolume(ev, Path("scan.e2e"), "heidelberg-e2e", display=True)
    assert im.data.shape == (n, h, w) and im.data[:, :, :3].max() == 0.0  # no-data is black
    assert im.metadata["intensity_transform"] == "log_display"
    assert im.scale == pytest.approx((120.0, 3.9, 11.5)) and im.units == ("um",) * 3
    assert list(im.boundaries) == ["ILM", "RPE"] and np.all(im.boundaries["RPE"] == 30.0)


def test_oct_converter_volume_conversion(tmp_path, monkeypatch):
    n, h, w = 2, 30, 40
    frames = [np.full((h, w), i, np.uint16) for i in range(n)]
    bm = np.full((n, w), 25.0)
    bm[0, 0] = h + 5  # outside the image: missing

    class FakeFDA:
        def __init__(self, path):
            self.path = path

        def read_oct_volume(self):
            return SimpleNamespace(volume=frames, pixel_spacing=[0.0115, 0.12, 0.0026],
                                   contours={"ILM": np.full((n, w), 5.0), "BM": bm}, metadata={"k": 1},
                                   laterality="R", acquisition_date=None, oct_header={"height": h})

    monkeypatch.setitem(sys.modules, "oct_converter.readers", SimpleNamespace(FDA=FakeFDA))
    path = tmp_path / "scan.fda"
    path.write_bytes(b"FOCT" + bytes(64))
    im = read_oct(path)
    assert im.data.shape == (n, h, w) and im.data[1].max() == 1
    # OCT-Converter pixel_spacing is (lateral, b-scan spacing, axial) in mm
    assert im.scale == pytest.approx((120.0, 2.6, 11.5))
    assert np.isnan(im.boundaries["RPE"][0, 0]) and im.boundaries["RPE"][1, 0] == 25.0
    assert im.metadata["format"] == "topcon-fda" and im.metadata["source"]["laterality"] == "R"


@pytest.mark.parametrize("suffix,module", [(".e2e", "eyepy"), (".xml", "eyepy"), (".fds", "oct_converter"),
                                           (".fda", "oct_converter"), (".img", "oct_converter"),
                                           (".oct", "oct_converter"), (".dcm", "pydicom")])
def test_junk_vendor_files_are_clear_errors(tmp_path, suffix, module):
    pytest.importorskip(module)
    path = tmp_path / f"junk{suffix}"
    junk = np.random.default_rng(3).bytes(5000)
    path.write_bytes(b"<?xml version='1.0'?><HEYEX><Patient/></HEYEX>" if suffix == ".xml" else junk)
    with pytest.raises(OctReadError) as info:
        read_oct(path)
    assert info.value.path == str(path) and "\n" not in info.value.reason


def test_heyex_export_folder_goes_to_the_xml_reader(tmp_path, monkeypatch):
    """A HEYEX XML export folder (XML + b-scan and localizer PNGs) is read through its XML."""
    iio.imwrite(tmp_path / "bscan.png", np.zeros((20, 30), np.uint8))
    iio.imwrite(tmp_path / "slo.png", np.zeros((40, 40), np.uint8))  # would fail as a stack
    (tmp_path / "export.xml").write_text("<?xml version='1.0'?><HEYEX></HEYEX>")
    seen = []
    monkeypatch.setattr(io, "_read_eyepy", lambda p, fmt, display: seen.append((p.name, fmt)) or
                        io.OctImage(np.zeros((1, 2, 2)), (1.0,) * 3, ("pixel",) * 3, io.AXES_3D))
    assert io.is_supported(tmp_path)
    read_oct(tmp_path)
    assert seen == [("export.xml", "heidelberg-xml")]


# ---------------------------------------------------------------- issue 10: nothing lost on reading and writing


def _imwrite_default(path, data):
    """tifffile.imwrite without photometric, as scripts do: 3-4 b-scans become one planar RGB page."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tifffile.imwrite(path, data)


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_planar_rgb_volume_is_read_as_bscans(tmp_path, n, dtype):
    data = _stack(n=n, dtype=dtype)
    _imwrite_default(tmp_path / "v.tif", data)
    assert tifffile.TiffFile(tmp_path / "v.tif").series[0].axes == "SYX"  # the trap this guards against
    with pytest.warns(UserWarning, match=f"stack of {n} b-scans"):
        im = read_oct(tmp_path / "v.tif")
    np.testing.assert_array_equal(im.data, data)
    assert im.axis_labels == io.AXES_3D and "planar RGB" in im.metadata["notes"][0]


def test_planar_rgb_with_identical_planes_is_one_gray_bscan(tmp_path):
    plane = _stack(n=1)[0]
    _imwrite_default(tmp_path / "g.tif", np.stack([plane] * 3))
    with pytest.warns(UserWarning, match="identical planes"):
        im = read_oct(tmp_path / "g.tif")
    np.testing.assert_array_equal(im.data, plane)


def test_all_series_of_one_bscan_shape_are_read(tmp_path):
    data = _stack(n=7, dtype=np.uint16)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, data[:3], photometric="minisblack")
    tifffile.imwrite(path, data[3:], photometric="minisblack", append=True)
    assert len(tifffile.TiffFile(path).series) == 2
    with pytest.warns(UserWarning, match="2 image series"):
        im = read_oct(path)
    np.testing.assert_array_equal(im.data, data)


def test_series_of_different_shapes_are_refused(tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, _stack(n=3), photometric="minisblack")
    tifffile.imwrite(path, _stack(n=2, h=10), photometric="minisblack", append=True)
    with pytest.raises(OctReadError, match="2 image series of different shapes"):
        read_oct(path)


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("dtype", ["i1", "<i2", ">i2", "i4", "f2", "f8", ">f4", "u4"])
def test_exact_dtype_tiff_keeps_values_scale_and_metadata(tmp_path, n, dtype):
    data = (_stack(n=n).astype(np.int64) - 20).astype(dtype)  # negative values included
    path = tmp_path / "x.tif"
    write_tiff(path, data, scale=(120.0, 3.87, 11.45), metadata={"provenance": {"model": "m"}}, exact_dtype=True)
    with tifffile.TiffFile(path) as tif:
        assert all(p.photometric == tifffile.PHOTOMETRIC.MINISBLACK for p in tif.pages)
    im = read_oct(path)
    assert im.data.dtype == np.dtype(dtype).newbyteorder("=") and im.data.shape == data.shape
    np.testing.assert_array_equal(im.data, data)
    assert im.scale == (120.0, 3.87, 11.45) and im.units == ("um",) * 3
    assert im.metadata["provenance"] == {"model": "m"} and "notes" not in im.metadata


def test_streamed_write_matches_and_checks_page_count(tmp_path):
    data = _stack(n=5, dtype=np.uint16)
    path = tmp_path / "p.tif"
    io.write_tiff_pages(path, (data[i:i + 2] for i in range(0, 5, 2)), data.shape, data.dtype, (1.0, 2.0, 3.0))
    np.testing.assert_array_equal(read_oct(path).data, data)
    with pytest.raises(ValueError, match="only 4 of the 5"):
        io.write_tiff_pages(path, iter(data[:4]), data.shape, data.dtype)
    np.testing.assert_array_equal(read_oct(path).data, data)  # the failed write left the old file


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_interrupted_write_keeps_previous_output_and_leaves_no_temp(tmp_path, error):
    old = _stack(dtype=np.uint16)
    path = tmp_path / "out.tif"
    write_tiff(path, old)

    def pages():
        yield old[0]
        raise error

    with pytest.raises(type(error) if isinstance(error, BaseException) else error):
        io.write_tiff_pages(path, pages(), old.shape, old.dtype)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    np.testing.assert_array_equal(read_oct(path).data, old)


def test_colour_png_conversion_is_said(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    iio.imwrite(tmp_path / "c.png", rgb)
    with pytest.warns(UserWarning, match="c.png: colour"):
        im = read_oct(tmp_path / "c.png")
    assert "gray" in im.metadata["notes"][0]


def test_hidden_files_skipped_by_folder_reader_and_cli_listing(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.zeros((20, 30), np.uint8))
    iio.imwrite(tmp_path / ".a.png", np.zeros((21, 30), np.uint8))  # would fail as a stack
    (tmp_path / ".hidden.vol").write_bytes(b"x")
    assert read_oct(tmp_path).data.shape == (1, 20, 30)
    assert [p.name for p in io.folder_files(tmp_path)] == ["a.png"]


def test_replace_folder_swaps_whole_folders(tmp_path):
    from napari_hdcyclegan.io.atomic import replace_folder

    target = tmp_path / "model"
    for version in ("one", "two"):
        tmp = tmp_path / "model.new"
        tmp.mkdir()
        (tmp / "v.txt").write_text(version)
        assert replace_folder(tmp, target) == target
        assert (target / "v.txt").read_text() == version and not tmp.exists()
        assert not (tmp_path / "model.old").exists()
    tmp = tmp_path / ".model.tmp"
    tmp.mkdir()
    replace_folder(tmp, target, old=tmp_path / ".model.old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_min_is_white_tiff_is_read_as_it_displays(tmp_path, dtype):
    stored = np.random.default_rng(0).integers(0, 200, (3, 16, 24)).astype(dtype)
    tifffile.imwrite(tmp_path / "w.tif", stored, photometric="miniswhite")
    with pytest.warns(UserWarning, match="min-is-white"):
        im = read_oct(tmp_path / "w.tif")
    top = np.iinfo(dtype).max
    assert im.data.dtype == dtype and im.data.shape == stored.shape
    assert np.array_equal(im.data, top - stored)  # bright tissue stays bright; nothing clipped
    assert "min-is-white" in im.metadata["notes"][0] and im.metadata["source"]["memory_mapped"] is False


def test_min_is_white_float_tiff_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((16, 24), np.float32), photometric="miniswhite")
    with pytest.raises(OctReadError, match="min-is-white TIFF of float32 samples"):
        read_oct(tmp_path / "f.tif")


def test_write_tiff_refuses_another_suffix_and_says_what_it_writes(tmp_path):
    """TIFF bytes under a .png name open nowhere as a PNG; the errors are the package's OutputError."""
    from napari_hdcyclegan.errors import OutputError

    with pytest.raises(OutputError, match=r"write_tiff writes TIFF files; name it \.tif or \.tiff"):
        write_tiff(tmp_path / "x.png", np.ones((8, 8), np.uint8))
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(OutputError, match="non-empty 2D b-scan or 3D stack"):
        write_tiff(tmp_path / "x.TIF", np.ones((2, 2, 8, 8), np.uint8))
    write_tiff(tmp_path / "y.TIFF", np.ones((8, 8), np.uint8))  # any case
