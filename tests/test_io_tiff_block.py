"""What written TIFFs carry beside pixels: boundary lines (NaN gaps included), the intensity domain and
the vendor's laterality / scan pattern, read back by read_oct; PNG outputs say what they drop."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

import napari_hdcyclegan
from napari_hdcyclegan.__main__ import main
from napari_hdcyclegan.denoise_files import write_output
from napari_hdcyclegan.io import OctImage, read_oct, write_tiff
from napari_hdcyclegan.io.tiff_block import KEPT_FIELDS, decode_boundaries, encode_heights

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_VOLS = [SHARED / "vendor" / "spectralis_raw_data" / "Willis_B_716_0.vol",
               SHARED / "vendor" / "heidelberg_vol" / "valid.vol"]
BUNDLED_VOL = Path(napari_hdcyclegan.__file__).parent / "data" / "heidelberg_circle.vol"
VENDOR_FIELDS = {"intensity_transform": "log_display", "source_intensity": "linear", "laterality": "OD",
                 "scan_pattern": "line"}


pytestmark = pytest.mark.usefixtures("release_engine")


def _lines(n: int, w: int) -> dict[str, np.ndarray]:
    """ILM / RPE / RNFL heights with NaN gaps (a missing run, a missing b-scan end, one lone NaN)."""
    cols = np.arange(w, dtype=np.float32)
    ilm = np.stack([10.25 + 0.1 * cols + i for i in range(n)]).astype(np.float32)
    ilm[0, 3:7] = np.nan
    rpe = ilm + 20.5
    rpe[-1, -4:] = np.nan
    rnfl = ilm + 3.0
    rnfl[:, 0] = np.nan
    return {"ILM": ilm, "RPE": rpe, "RNFL": rnfl}


def _assert_same_lines(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)  # names and order (ILM, RPE first)
    for name in want:
        assert got[name].dtype == np.float32 and got[name].shape == want[name].shape
        np.testing.assert_array_equal(got[name], want[name])  # NaN where NaN, values bit for bit


# ---------------------------------------------------------------- write_tiff / read_oct


@pytest.mark.parametrize("dtype,exact", [(np.float32, False), (np.uint16, False), (np.int16, True)])
def test_boundaries_round_trip(tmp_path, dtype, exact):
    """ImageJ TIFFs (float32, uint16) and a shaped TIFF (int16) give the lines back, NaN gaps kept."""
    n, h, w = 3, 40, 24
    lines = _lines(n, w)
    data = (np.random.default_rng(0).random((n, h, w)) * 100).astype(dtype)
    path = tmp_path / "scan.tif"
    write_tiff(path, data, scale=(120.0, 3.87, 11.45), metadata=dict(VENDOR_FIELDS), exact_dtype=exact,
               boundaries=lines)
    im = read_oct(path)
    np.testing.assert_array_equal(im.data, data)
    _assert_same_lines(im.boundaries, lines)
    assert {k: im.metadata[k] for k in KEPT_FIELDS} == VENDOR_FIELDS
    assert im.scale == pytest.approx((120.0, 3.87, 11.45))


def test_one_bscan_boundaries_round_trip(tmp_path):
    line = np.array([5.5, np.nan, np.nan, 7.0, 8.125], np.float32)
    write_tiff(tmp_path / "b.tif", np.zeros((12, 5), np.uint8), boundaries={"ILM": line})
    im = read_oct(tmp_path / "b.tif")
    assert im.data.shape == (12, 5)
    _assert_same_lines(im.boundaries, {"ILM": line[None]})


def test_other_tiff_readers_see_the_same_pixels(tmp_path):
    from PIL import Image

    data = np.random.default_rng(1).random((1, 30, 20)).astype(np.float32)
    write_tiff(tmp_path / "s.tif", data, scale=(1.0, 3.87, 11.45), boundaries=_lines(1, 20))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s.tif"), data[0])
    with Image.open(tmp_path / "s.tif") as pil:
        np.testing.assert_array_equal(np.asarray(pil), data[0])
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:  # the block is plain JSON text in ImageJ Properties
        block = json.loads(tif.imagej_metadata["Properties"]["napari_hdcyclegan"])
    assert block["boundaries"]["ILM"]["shape"] == [1, 20] and block["boundaries"]["ILM"]["dtype"] == "<f4"


def test_boundaries_that_do_not_fit_the_image_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'ILM' has shape"):
        write_tiff(tmp_path / "x.tif", np.zeros((2, 10, 8), np.uint8), boundaries={"ILM": np.zeros((2, 7))})
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_a_damaged_record_is_left_out_with_a_note(tmp_path):
    good = encode_heights(np.full((1, 6), 3.0), (1, 10, 6))
    block = {"axis_labels": ["b-scan", "depth", "lateral"], "units": ["pixel"] * 3, "scale": [1.0] * 3,
             "metadata": {}, "boundaries": {"ILM": good, "RPE": {**good, "data": "not base64!"},
                                            "RNFL": encode_heights(np.zeros(6), (1, 10, 6))}}
    block["boundaries"]["RNFL"]["shape"] = [2, 3]
    tifffile.imwrite(tmp_path / "d.tif", np.zeros((1, 10, 6), np.uint8), imagej=True,
                     metadata={"axes": "ZYX", "Properties": {"napari_hdcyclegan": json.dumps(block)}})
    with pytest.warns(UserWarning, match="'RPE' is not readable"):
        im = read_oct(tmp_path / "d.tif")
    assert list(im.boundaries) == ["ILM"] and np.all(im.boundaries["ILM"] == 3.0)
    assert any("'RNFL' has shape (2, 3)" in n for n in im.metadata["notes"])
    assert decode_boundaries(None, (1, 10, 6)) == ({}, [])


# ---------------------------------------------------------------- denoised outputs


def test_denoised_tiff_keeps_lines_and_vendor_fields(tmp_path):
    """write_output (the CLI's writer) carries the input's lines and intensity domain to the output."""
    n, h, w = 2, 16, 12
    lines = _lines(n, w)
    image = OctImage(np.zeros((n, h, w), np.float32), (1.0, 3.87, 11.8), ("pixel", "um", "um"),
                     ("b-scan", "depth", "lateral"), {"path": "in.vol", "format": "heidelberg-vol",
                                                      "source": {"scan_position": "OD"}, **VENDOR_FIELDS},
                     lines)
    pages = np.full((n, h, w), 0.25, np.float32)
    write_output(tmp_path / "out.tif", iter(pages), (n, h, w), np.dtype(np.float32), image, {"model": "m"})
    out = read_oct(tmp_path / "out.tif")
    np.testing.assert_array_equal(out.data, pages)  # pixels as given
    _assert_same_lines(out.boundaries, lines)
    assert {k: out.metadata[k] for k in KEPT_FIELDS} == VENDOR_FIELDS
    assert out.metadata["provenance"] == {"model": "m"}


def test_vendor_reader_gives_laterality_and_scan_pattern():
    pytest.importorskip("eyepy")
    im = read_oct(BUNDLED_VOL)
    assert im.metadata["laterality"] == "OD" and im.metadata["scan_pattern"] == "circle"
    assert im.metadata["intensity_transform"] == "log_display"


@pytest.mark.parametrize("vol", SHARED_VOLS, ids=lambda p: p.name)
def test_real_vol_round_trip_through_the_cli(tmp_path, tiny_model, vol):
    pytest.importorskip("eyepy")
    if not vol.is_file():
        pytest.skip(f"needs the shared real data (../shared/data/vendor/{vol.parent.name}/{vol.name})")
    src = read_oct(vol)
    assert {"ILM", "RPE"} <= set(src.boundaries)
    out_path = tmp_path / f"{vol.stem}.tif"
    assert main(["denoise", str(vol), str(out_path), "-w", str(tiny_model), "-d", "cpu", "-q"]) == 0
    out = read_oct(out_path)
    _assert_same_lines(out.boundaries, src.boundaries)
    assert any(np.isnan(rows).any() for rows in out.boundaries.values())  # the vendor's gaps survived
    kept = {k: src.metadata[k] for k in KEPT_FIELDS}
    assert kept["intensity_transform"] == "log_display" and kept["laterality"] == "OD"
    assert {k: out.metadata[k] for k in KEPT_FIELDS} == kept
    assert out.scale == pytest.approx(src.scale) and out.units == src.units
    assert out.data.dtype == np.float32 and 0.0 <= out.data.min() and out.data.max() <= 1.0  # display domain


def test_the_command_line_keeps_a_saved_crops_position(tmp_path, tiny_model, capsys):
    data = (np.random.default_rng(4).random((2, 24, 32)) * 200).astype(np.uint8)
    write_tiff(tmp_path / "crop.tif", data, scale=(60.0, 3.87, 11.45), translate=(60.0, 38.7, 114.5))
    assert main(["denoise", str(tmp_path / "crop.tif"), str(tmp_path / "out.tif"), "-w", str(tiny_model),
                 "-d", "cpu", "-q"]) == 0
    assert read_oct(tmp_path / "out.tif").translate == pytest.approx((60.0, 38.7, 114.5))
    write_tiff(tmp_path / "one.tif", data[:1], translate=(2.0, 0.0, 0.0))
    assert main(["denoise", str(tmp_path / "one.tif"), str(tmp_path / "one.png"), "-w", str(tiny_model),
                 "-d", "cpu", "-q"]) == 0
    assert "the position (translate)" in capsys.readouterr().err


# ---------------------------------------------------------------- PNG outputs keep pixels only


def test_png_output_warns_what_it_drops(tmp_path, tiny_model, capsys):
    data = (np.random.default_rng(2).random((1, 24, 32)) * 200).astype(np.uint8)
    write_tiff(tmp_path / "in.tif", data, scale=(1.0, 3.87, 11.45), boundaries=_lines(1, 32))
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.png"), "-w", str(tiny_model),
                 "-d", "cpu", "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and ".png keeps pixels only" in err
    assert "µm scale" in err and "ILM, RPE, RNFL" in err and "model record" in err
    assert iio.imread(tmp_path / "out.png").shape == (24, 32)


def test_png_to_png_has_nothing_to_drop(tmp_path, tiny_model, capsys):
    iio.imwrite(tmp_path / "in.png", (np.random.default_rng(3).random((24, 32)) * 200).astype(np.uint8))
    assert main(["denoise", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "-w", str(tiny_model),
                 "-d", "cpu", "-q"]) == 0
    assert "keeps pixels only" not in capsys.readouterr().err
