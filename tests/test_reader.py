"""Tests for the npe2 reader and writer (napari_hdcyclegan._reader / _writer), headless."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_hdcyclegan import _reader
from napari_hdcyclegan._reader import BSCAN_SPACING_UM, boundary_paths, napari_get_reader
from napari_hdcyclegan._writer import write_tiff as layer_writer
from napari_hdcyclegan.io import read_oct, write_tiff

PLUGIN = "napari-hdcyclegan"
VOL = Path(_reader.__file__).resolve().parent / "data" / "heidelberg_circle.vol"
SCALE = (120.0, 3.87, 11.45)


def _scaled_tiff(path: Path) -> np.ndarray:
    """Write a small ImageJ TIFF with Spectralis-like scale and return its data."""
    data = np.random.default_rng(0).integers(0, 255, (3, 24, 32), dtype=np.uint8)
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / SCALE[2], 1 / SCALE[1]),
                     metadata={"spacing": SCALE[0], "unit": "micron", "axes": "ZYX"})
    return data


def _units(layer) -> tuple[str, ...]:
    return tuple(str(u) for u in layer.units)


def test_get_reader_accepts_supported_paths(tmp_path):
    tif = tmp_path / "a.tif"
    _scaled_tiff(tif)
    iio.imwrite(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
    assert callable(napari_get_reader(str(tif)))
    assert callable(napari_get_reader([str(tif), str(tmp_path / "b.png")]))
    assert callable(napari_get_reader(str(tmp_path)))  # a folder of b-scans
    assert callable(napari_get_reader(str(VOL)))


def test_get_reader_returns_none_for_unsupported(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "other.xml").write_text("<root/>")
    (tmp_path / "empty_dir").mkdir()
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path / "other.xml")) is None  # XML that is not a HEYEX export
    assert napari_get_reader(str(tmp_path / "empty_dir")) is None
    assert napari_get_reader([str(tmp_path / "notes.txt"), str(tmp_path / "other.xml")]) is None
    assert napari_get_reader([]) is None


def test_reader_layer_tuples(tmp_path):
    path = tmp_path / "scan_01.tif"
    data = _scaled_tiff(path)
    layers = napari_get_reader(str(path))(str(path))
    assert len(layers) == 1
    arr, kwargs, kind = layers[0]
    assert kind == "image"
    np.testing.assert_array_equal(arr, data)
    assert kwargs["name"] == "scan_01"
    assert kwargs["scale"] == pytest.approx(SCALE)
    assert kwargs["units"] == ("um", "um", "um")
    assert kwargs["axis_labels"] == ("b-scan", "depth", "lateral")
    assert kwargs["metadata"]["path"] == str(path) and kwargs["metadata"]["format"] == "imagej-tiff"


def test_reader_vol_gives_boundary_shapes():
    pytest.importorskip("eyepy")
    layers = napari_get_reader(str(VOL))(str(VOL))
    kinds = {kw["name"]: kind for _, kw, kind in layers}
    assert kinds["heidelberg_circle"] == "image"
    assert kinds["heidelberg_circle_ILM"] == kinds["heidelberg_circle_RPE"] == "shapes"
    by_name = {kw["name"]: (d, kw) for d, kw, _ in layers}
    image_kw = by_name["heidelberg_circle"][1]
    for name in ("ILM", "RPE"):
        paths, kw = by_name[f"heidelberg_circle_{name}"]
        assert kw["scale"] == image_kw["scale"] and kw["units"] == image_kw["units"]
        assert kw["axis_labels"] == image_kw["axis_labels"]
        assert kw["shape_type"] == "path" and kw["metadata"]["heights"].shape == (1, 768)
        assert all(p.shape[1] == 3 and np.all(p[:, 0] == 0) for p in paths)  # on b-scan 0
    assert by_name["heidelberg_circle_ILM"][1]["edge_color"] == "#F668C2"  # eyepy's ILM colour


def test_boundary_paths_split_at_gaps_and_orientation():
    heights = np.array([[10, 11, np.nan, 13, 14, 15, np.nan, 17], [20] * 8], dtype=np.float32)
    paths = boundary_paths(heights, ndim=3)
    # b-scan 0: runs [0,1] and [3,5]; the single A-scan at 7 cannot make a path; b-scan 1: one run
    assert [len(p) for p in paths] == [2, 3, 8]
    np.testing.assert_array_equal(paths[1], [[0, 13, 3], [0, 14, 4], [0, 15, 5]])  # (b-scan, row, col)
    assert np.all(paths[2][:, 0] == 1)
    two_d = boundary_paths(heights[1:], ndim=2)
    assert two_d[0].shape == (8, 2) and np.all(two_d[0][:, 0] == 20)


def test_bad_file_notifies_instead_of_raising(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff at all" * 10)
    result = napari_get_reader(str(bad))(str(bad))
    assert result == [(None,)]  # napari's "nothing to add" sentinel: no traceback dialog
    assert len(shown) == 1 and "broken.tif" in shown[0] and "not a valid TIFF" in shown[0]


def test_viewer_opens_tiff_through_plugin(make_napari_viewer_proxy, tmp_path):
    path = tmp_path / "vol.tif"
    data = _scaled_tiff(path)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert len(layers) == 1
    layer = viewer.layers["vol"]
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    np.testing.assert_allclose(layer.scale, SCALE, rtol=1e-6)
    assert _units(layer) == ("micrometer",) * 3
    assert tuple(layer.axis_labels) == ("b-scan", "depth", "lateral")
    assert layer.metadata["path"] == str(path)


def test_open_files_as_stack_gives_one_volume_in_the_order_given(make_napari_viewer_proxy, tmp_path, monkeypatch):
    import imageio.v3 as iio

    bscans = [np.full((20, 30), v, np.uint8) for v in (30, 10, 20)]
    paths = [str(tmp_path / name) for name in ("b10.png", "b2.png", "c.png")]
    for path, bscan in zip(paths, bscans):
        iio.imwrite(path, bscan)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(paths, stack=True, plugin=PLUGIN)
    assert len(layers) == 1 and layers[0].data.shape == (3, 20, 30)
    np.testing.assert_array_equal(np.asarray(layers[0].data), np.stack(bscans))  # as given, not sorted
    assert layers[0].metadata["files"] == ["b10.png", "b2.png", "c.png"]
    assert len(viewer.open(paths[:2], plugin=PLUGIN)) == 2  # without stack: one layer per file
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    iio.imwrite(tmp_path / "wide.png", np.zeros((20, 40), np.uint8))
    assert viewer.open([paths[0], str(tmp_path / "wide.png")], stack=True, plugin=PLUGIN) == []
    assert len(shown) == 1 and "b-scans differ" in shown[0] and "a stack of files" in shown[0]


def test_one_b_scan_stacks_stack_like_b_scans(tmp_path):
    """Saved previews and one-line .vol files read as (1, H, W): stacked, they are b-scans too."""
    paths = [str(tmp_path / f"p{i}.tif") for i in range(2)]
    for i, path in enumerate(paths):
        write_tiff(path, np.full((1, 12, 16), 10 * i, np.uint8), scale=SCALE)
    data, kwargs, kind = napari_get_reader(paths)(paths)[0]
    assert kind == "image" and data.shape == (2, 12, 16) and data[1].max() == 10
    np.testing.assert_allclose(kwargs["scale"][1:], SCALE[1:])


def test_viewer_open_bad_file_shows_reason(make_napari_viewer_proxy, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    viewer = make_napari_viewer_proxy()
    assert viewer.open(str(bad), plugin=PLUGIN) == []
    assert len(viewer.layers) == 0
    assert shown and "empty" in shown[0]


def test_viewer_opens_vol_with_boundary_layers(make_napari_viewer_proxy):
    pytest.importorskip("eyepy")
    viewer = make_napari_viewer_proxy()
    viewer.open(str(VOL), plugin=PLUGIN)
    image, ilm, rpe = (viewer.layers[n] for n in ("heidelberg_circle", "heidelberg_circle_ILM",
                                                    "heidelberg_circle_RPE"))
    assert image.data.shape == (1, 496, 768)
    np.testing.assert_allclose(ilm.scale, image.scale)
    # orientation in world coordinates too: ILM above RPE (smaller depth) on the shown b-scan
    ilm_rows = np.concatenate([p[:, 1] for p in ilm.data])
    rpe_rows = np.concatenate([p[:, 1] for p in rpe.data])
    assert np.median(ilm_rows) < np.median(rpe_rows)


def test_a_single_b_scan_in_um_opens_with_a_nominal_b_scan_spacing(tmp_path):
    """Beside µm volumes, a pixel b-scan axis would make napari drop units and draw a long slider."""
    write_tiff(tmp_path / "one.tif", np.zeros((1, 12, 16), np.uint8), scale=(1.0, 3.87, 11.45),
               units=("pixel", "um", "um"), boundaries={"ILM": np.full((1, 16), 3.0, np.float32)})
    layers = napari_get_reader(str(tmp_path / "one.tif"))(str(tmp_path / "one.tif"))
    for _, kwargs, _ in layers:  # the image and its ILM line
        assert tuple(kwargs["units"]) == ("um", "um", "um") and kwargs["scale"][0] == BSCAN_SPACING_UM
    assert "nominal" in layers[0][1]["metadata"]["bscan_spacing_um"]
    write_tiff(tmp_path / "b7.tif", np.zeros((1, 12, 16), np.uint8), scale=(1.0, 3.87, 11.45),
               units=("pixel", "um", "um"), translate=(7.0, 0.0, 0.0))  # b-scan 7 of a volume, saved
    kwargs = napari_get_reader(str(tmp_path / "b7.tif"))(str(tmp_path / "b7.tif"))[0][1]
    assert kwargs["translate"] == (7 * BSCAN_SPACING_UM, 0.0, 0.0)  # still b-scan 7, now in µm
    write_tiff(tmp_path / "px.tif", np.zeros((1, 12, 16), np.uint8), units="pixel")  # no µm anywhere
    kwargs = napari_get_reader(str(tmp_path / "px.tif"))(str(tmp_path / "px.tif"))[0][1]
    assert tuple(kwargs["units"]) == ("pixel",) * 3 and kwargs["scale"][0] == 1.0


def test_writer_round_trip_keeps_scale(tmp_path):
    import napari.layers

    data = np.random.default_rng(2).random((2, 16, 20)).astype(np.float32)
    layer = napari.layers.Image(data, scale=(60.0, 3.87, 11.45), units=("um", "um", "um"),
                                axis_labels=("b-scan", "depth", "lateral"), metadata={"model": "x"})
    arr, attributes, _ = layer.as_layer_data_tuple()
    path = str(tmp_path / "saved.tif")
    assert layer_writer(path, arr, attributes) == [path]
    im = read_oct(path)
    np.testing.assert_array_equal(im.data, data)
    assert im.scale == pytest.approx((60.0, 3.87, 11.45), rel=1e-9)
    assert im.units == ("um", "um", "um") and im.axis_labels == ("b-scan", "depth", "lateral")
    assert im.metadata["model"] == "x"


@pytest.mark.parametrize("dtype", [np.float32, np.int16])  # an ImageJ TIFF and a shaped one
def test_a_saved_layer_reopens_where_it_was(tmp_path, dtype):
    """A crop (or one b-scan) keeps its position: translate is saved and read back, boundaries too."""
    import napari.layers

    data = (np.random.default_rng(3).random((2, 16, 20)) * 100).astype(dtype)
    translate = (120.0, 387.2, 3578.2)
    layer = napari.layers.Image(data, scale=(60.0, 3.87, 11.45), translate=translate, units=("um",) * 3)
    arr, attributes, _ = layer.as_layer_data_tuple()
    path = str(tmp_path / "crop.tif")
    layer_writer(path, arr, attributes)
    assert read_oct(path).translate == pytest.approx(translate, rel=1e-12)
    write_tiff(tmp_path / "lines.tif", data, scale=SCALE, translate=translate,
               boundaries={"ILM": np.full((2, 20), 4.5, np.float32)})
    layers = napari_get_reader(str(tmp_path / "lines.tif"))(str(tmp_path / "lines.tif"))
    assert [kwargs["translate"] for _, kwargs, _ in layers] == [translate, translate]  # image and ILM
    write_tiff(tmp_path / "plain.tif", data)
    assert read_oct(tmp_path / "plain.tif").translate is None  # nothing stored when there is no offset
    assert "translate" not in napari_get_reader(str(tmp_path / "plain.tif"))(str(tmp_path / "plain.tif"))[0][1]


def test_a_layer_in_mm_reopens_where_it_was_in_um(tmp_path):
    import napari.layers

    layer = napari.layers.Image(np.zeros((2, 8, 8), np.float32), scale=(0.12, 0.0039, 0.011),
                                translate=(1.2, 0.5, 0.0), units="mm")
    arr, attributes, _ = layer.as_layer_data_tuple()
    layer_writer(str(tmp_path / "mm.tif"), arr, attributes)
    back = read_oct(tmp_path / "mm.tif")
    assert back.scale == pytest.approx((120.0, 3.9, 11.0)) and back.translate == pytest.approx((1200.0, 500.0, 0.0))


@pytest.mark.parametrize("data", [np.random.default_rng(5).random((2, 8, 9)) / 3,  # float64, not float32-exact
                                  np.arange(2 * 8 * 9, dtype=np.int32).reshape(2, 8, 9) * 99_991 - 2**30])
def test_a_saved_layer_keeps_its_dtype_and_every_value(tmp_path, data):
    import napari.layers

    arr, attributes, _ = napari.layers.Image(data, scale=(60.0, 3.87, 11.45), units="um").as_layer_data_tuple()
    path = str(tmp_path / "exact.tif")
    layer_writer(path, arr, attributes)
    back = read_oct(path)
    assert back.data.dtype == data.dtype
    np.testing.assert_array_equal(back.data, data)
    assert back.scale == pytest.approx((60.0, 3.87, 11.45))


def test_viewer_saves_layer_through_plugin(make_napari_viewer_proxy, tmp_path):
    src = tmp_path / "in.tif"
    write_tiff(src, np.ones((2, 8, 8), np.uint16), scale=SCALE)
    viewer = make_napari_viewer_proxy()
    viewer.open(str(src), plugin=PLUGIN)
    out = tmp_path / "out.tif"
    viewer.layers["in"].save(str(out), plugin=PLUGIN)
    back = viewer.open(str(out), plugin=PLUGIN)[0]
    np.testing.assert_allclose(back.scale, SCALE)
    assert _units(back) == ("micrometer",) * 3


def test_planar_rgb_volume_opens_as_bscans_with_a_note(tmp_path):
    """A 3-b-scan volume saved without photometric is one planar RGB page: it opens as 3 b-scans."""
    import warnings

    data = np.stack([np.full((20, 30), v, np.uint16) for v in (10, 200, 3000)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tifffile.imwrite(tmp_path / "v.tif", data)
    with pytest.warns(UserWarning, match="stack of 3 b-scans"):
        layers = napari_get_reader(str(tmp_path / "v.tif"))(str(tmp_path / "v.tif"))
    arr, kwargs, kind = layers[0]
    assert kind == "image" and np.array_equal(arr, data)
    assert "planar RGB" in kwargs["metadata"]["notes"][0]


def test_layer_writer_writes_grayscale_pages_atomically(tmp_path):
    data = np.arange(4 * 12 * 16, dtype=np.uint8).reshape(4, 12, 16)
    path = tmp_path / "out.tif"
    layer_writer(str(path), data, {"scale": (1.0, 3.87, 11.45), "units": ("um",) * 3})
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 4 and tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]
    np.testing.assert_array_equal(read_oct(path).data, data)


def test_a_saved_layer_reopens_as_it_was_shown(tmp_path):
    """Contrast limits, rotation and shear are saved and read back; boundary lines turn with the image."""
    import napari.layers

    data = (np.random.default_rng(4).random((2, 16, 20)) * 200).astype(np.uint8)
    rotate = napari.layers.Image(data, rotate=(0.0, 0.0, 30.0)).rotate  # a turn in the b-scan plane
    layer = napari.layers.Image(data, scale=(60.0, 3.87, 11.45), units=("um",) * 3, contrast_limits=(12.5, 180.0),
                                rotate=rotate, shear=(0.0, 0.0, 0.2))
    arr, attributes, _ = layer.as_layer_data_tuple()
    path = str(tmp_path / "shown.tif")
    layer_writer(path, arr, attributes)
    write_tiff(tmp_path / "lines.tif", data, scale=SCALE, boundaries={"ILM": np.full((2, 20), 4.5, np.float32)},
               display={"rotate": rotate, "contrast_limits": (1, 2)})
    data_back, kwargs, _ = napari_get_reader(path)(path)[0]
    reopened = napari.layers.Image(data_back, **kwargs)
    assert reopened.contrast_limits == [12.5, 180.0]
    np.testing.assert_allclose(reopened.rotate, layer.rotate, atol=1e-12)
    np.testing.assert_allclose(reopened.shear, layer.shear, atol=1e-12)
    image, line = napari_get_reader(str(tmp_path / "lines.tif"))(str(tmp_path / "lines.tif"))
    np.testing.assert_allclose(line[1]["rotate"], rotate)
    np.testing.assert_allclose(image[1]["rotate"], rotate)
    assert "contrast_limits" not in line[1]
    plain = napari.layers.Image(data)
    layer_writer(str(tmp_path / "plain.tif"), *plain.as_layer_data_tuple()[:2])
    assert read_oct(tmp_path / "plain.tif").display == {"contrast_limits": (0.0, 255.0)}  # nothing else stored
    with pytest.raises(ValueError, match="contrast limits must be low < high"):
        write_tiff(tmp_path / "bad.tif", data, display={"contrast_limits": (5, 5)})
    with pytest.warns(UserWarning, match="rotate and shear are not saved"):
        write_tiff(tmp_path / "mixed.tif", data, scale=(0.12, 3.87, 11.45), units=("mm", "um", "um"),
                   display={"rotate": rotate})
    assert read_oct(tmp_path / "mixed.tif").display == {}
