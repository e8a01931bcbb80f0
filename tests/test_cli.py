"""CLI: denoise files and folders with a tiny model, one-line errors with exit status 2."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from napari_hdcyclegan.__main__ import main
from napari_hdcyclegan.model.checkpoint import ModelConfig, save_model
from napari_hdcyclegan.model.networks import Generator


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_model(path, {"G_L": Generator(4)}, ModelConfig(generator_width=4, name="tiny", trained=True))
    return path


@pytest.fixture(autouse=True)
def _release():
    yield
    from napari_hdcyclegan import engine

    engine.release()


def _vol(shape=(3, 24, 32), dtype=np.uint16, seed=0):
    return (np.random.default_rng(seed).random(shape) * 1000).astype(dtype)


def test_denoise_tiff_file(tmp_path, weights, capsys):
    data = _vol()
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack")
    rc = main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "--weights", str(weights),
               "--device", "cpu", "--batch-size", "2"])
    assert rc == 0
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == data.shape and out.dtype == data.dtype and not np.array_equal(out, data)
    assert "tiny" in capsys.readouterr().out


def test_denoise_keeps_scale(tmp_path, weights):
    from napari_hdcyclegan.io import read_oct, write_tiff

    write_tiff(tmp_path / "in.tif", _vol(dtype=np.float32), scale=(120.0, 3.87, 11.45))
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "-w", str(weights), "-q"]) == 0
    img = read_oct(tmp_path / "out.tif")
    np.testing.assert_allclose(img.scale, (120.0, 3.87, 11.45), rtol=1e-4)
    assert img.data.dtype == np.float32
    assert img.metadata["provenance"]["model"] == "tiny"


def test_denoise_folder_writes_same_names(tmp_path, weights):
    import imageio.v3 as iio

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", _vol(), photometric="minisblack")
    iio.imwrite(src / "b.png", _vol((24, 32), np.uint8))
    (src / "notes.txt").write_text("ignored")
    assert main(["denoise", str(src), str(dst), "--weights", str(weights), "-q"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["a.tif", "b.png"]
    assert tifffile.imread(dst / "a.tif").dtype == np.uint16
    png = iio.imread(dst / "b.png")
    assert png.shape == (24, 32) and png.dtype == np.uint8


def _one_line_error(capsys, rc, match):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and match in errors[0], err
    assert not any("Traceback" in line for line in err)


def test_missing_input(tmp_path, weights, capsys):
    rc = main(["denoise", str(tmp_path / "nope.tif"), str(tmp_path / "o.tif"), "-w", str(weights)])
    _one_line_error(capsys, rc, "nope.tif")


def test_unreadable_input(tmp_path, weights, capsys):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    rc = main(["denoise", str(tmp_path / "bad.tif"), str(tmp_path / "o.tif"), "-w", str(weights), "-q"])
    _one_line_error(capsys, rc, "bad.tif")


def test_wrong_dimensions(tmp_path, weights, capsys):
    tifffile.imwrite(tmp_path / "tiny.tif", np.zeros((4, 4), np.uint8))
    rc = main(["denoise", str(tmp_path / "tiny.tif"), str(tmp_path / "o.tif"), "-w", str(weights), "-q"])
    _one_line_error(capsys, rc, "at least")


def test_bad_weights(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "config.json").write_text("{broken")
    rc = main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"), "-w", str(tmp_path / "w")])
    _one_line_error(capsys, rc, "config.json")


def test_bad_device_and_output_type(tmp_path, weights, capsys):
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    rc = main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"), "-w", str(weights), "-d", "gpu7"])
    _one_line_error(capsys, rc, "device")
    rc = main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "o.png"), "-w", str(weights), "-q"])
    _one_line_error(capsys, rc, "volume cannot be written")


def test_empty_folder(tmp_path, weights, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["denoise", str(tmp_path / "empty"), str(tmp_path / "out"), "-w", str(weights)])
    _one_line_error(capsys, rc, "no TIFF")


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "napari_hdcyclegan", "denoise", str(tmp_path / "missing.tif"),
                           str(tmp_path / "out.tif")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "Traceback" not in proc.stderr


def test_boundaries_csv(tmp_path, weights, capsys):
    pytest.importorskip("napari_hdcyclegan.boundaries", reason="boundaries module not there yet")
    from napari_hdcyclegan.boundaries import write_boundary_channel
    from napari_hdcyclegan.io import write_tiff
    from napari_hdcyclegan.simulate import simulate_volume

    # a fixed channel: no calibration run inside the test
    write_boundary_channel(weights, {"stage": "init", "channel": 0, "how": "test"})
    vol = simulate_volume(n_bscans=2, seed=1, shape=(64, 48))
    write_tiff(tmp_path / "vol.tif", vol.hn, scale=(120.0, 3.87, 11.45))
    rc = main(["boundaries", str(tmp_path / "vol.tif"), str(tmp_path / "b.csv"), "-w", str(weights), "-q"])
    assert rc == 0, capsys.readouterr().err
    lines = (tmp_path / "b.csv").read_text().splitlines()
    assert lines[0] == "bscan,ascan,ILM,RPE,thickness_um"
    assert len(lines) == 1 + 2 * 48
    first = lines[1].split(",")
    assert first[:2] == ["0", "0"] and len(first) == 5
    rows = [r.split(",") for r in lines[1:] if "" not in r.split(",")]
    for _, _, ilm, rpe, thick in rows[:5]:
        assert float(thick) == pytest.approx((float(rpe) - float(ilm)) * 3.87, abs=0.01)
    rc = main(["boundaries", str(tmp_path / "vol.tif"), str(tmp_path / "b.txt"), "-w", str(weights)])
    _one_line_error(capsys, rc, ".csv")


def test_demo_headless_writes_tiff_and_png(tmp_path, weights, monkeypatch, capsys):
    from napari_hdcyclegan import baselines

    def no_bm3d(*args, **kwargs):
        raise baselines.MissingExtraError("bm3d not installed (simulated)")

    monkeypatch.setitem(baselines.BASELINES, "bm3d", no_bm3d)  # BM3D takes seconds per b-scan
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rc = main(["demo", "--out", str(tmp_path / "demo"), "-w", str(weights), "-q"])
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["sample_denoised.tif", "sample_raw.tif", "sample_side_by_side.png"]
    raw = tifffile.imread(tmp_path / "demo" / "sample_raw.tif")
    den = tifffile.imread(tmp_path / "demo" / "sample_denoised.tif")
    assert den.shape == raw.shape and den.dtype == raw.dtype
    import imageio.v3 as iio

    png = iio.imread(tmp_path / "demo" / "sample_side_by_side.png")
    assert png.shape[1] > 3 * png.shape[0]  # panels side by side
    assert "BM3D panel skipped" in capsys.readouterr().err
