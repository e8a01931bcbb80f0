"""CLI: denoise files and folders with a tiny model, one-line errors with exit status 2."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_hdcyclegan.__main__ import main
from napari_hdcyclegan.model.checkpoint import ModelConfig, save_model
from napari_hdcyclegan.model.networks import Generator

pytestmark = pytest.mark.usefixtures("release_engine")


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


def test_precision_flag_sets_the_autocast(tmp_path, weights, capsys):
    from napari_hdcyclegan import engine
    from napari_hdcyclegan.__main__ import build_parser
    from napari_hdcyclegan.devices import PRECISIONS

    data = _vol()
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack")
    outs = {}
    for precision in ("fp32", "bf16"):
        rc = main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / f"{precision}.tif"), "--weights", str(weights),
                   "--device", "cpu", "--precision", precision])
        assert rc == 0
        assert engine.get_denoiser(weights, "cpu").autocast_dtype == (torch.bfloat16 if precision == "bf16" else None)
        outs[precision] = tifffile.imread(tmp_path / f"{precision}.tif").astype(np.int64)
    diff = np.abs(outs["bf16"] - outs["fp32"])  # bf16 ran (a random tiny net amplifies its rounding)
    assert diff.max() > 0 and diff.mean() <= 0.03 * np.ptp(outs["fp32"])
    with pytest.raises(SystemExit):
        main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "x.tif"), "--precision", "fp64"])
    assert "invalid choice: 'fp64'" in capsys.readouterr().err
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["denoise"]
    assert next(a for a in sub._actions if a.dest == "precision").choices == PRECISIONS


def test_lateral_sigma_flag_overrides_the_models_smoothing(tmp_path, weights, capsys):
    from napari_hdcyclegan.io import read_oct

    data = _vol((1, 24, 48))
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack")
    outs = {}
    for sigma in ("0", "3"):
        rc = main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / f"s{sigma}.tif"), "--weights", str(weights),
                   "--device", "cpu", "--precision", "fp32", "--lateral-sigma", sigma])
        assert rc == 0
        img = read_oct(tmp_path / f"s{sigma}.tif")
        outs[sigma] = np.asarray(img.data, float)
        assert img.metadata["provenance"]["config"]["lateral_sigma"] == float(sigma)
    lateral = lambda x: np.abs(np.diff(x, axis=-1)).mean()  # noqa: E731
    assert lateral(outs["3"]) < 0.7 * lateral(outs["0"])  # smoother across A-scans
    with pytest.raises(SystemExit) as refused:  # by argparse, before any model is loaded
        main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "x.tif"), "--weights", str(weights),
              "--lateral-sigma", "40"])
    assert refused.value.code == 2
    assert "lateral smoothing must be from 0 to 16 pixels" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()
    with pytest.raises(SystemExit):
        main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "x.tif"), "--lateral-sigma", "-1"])


def test_denoise_keeps_scale(tmp_path, weights):
    from napari_hdcyclegan.io import read_oct, write_tiff

    write_tiff(tmp_path / "in.tif", _vol(dtype=np.float32), scale=(120.0, 3.87, 11.45))
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "-w", str(weights), "-q"]) == 0
    img = read_oct(tmp_path / "out.tif")
    np.testing.assert_allclose(img.scale, (120.0, 3.87, 11.45), rtol=1e-4)
    assert img.data.dtype == np.float32
    assert img.metadata["provenance"]["model"] == "tiny"


def test_provenance_names_the_input_by_its_absolute_path(tmp_path, weights, monkeypatch):
    import json

    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    monkeypatch.chdir(tmp_path)
    assert main(["denoise", "in.tif", "out.tif", "-w", str(weights), "-q"]) == 0
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        block = json.loads(tif.imagej_metadata["Properties"]["napari_hdcyclegan"])
    assert block["metadata"]["source"]["path"] == str((tmp_path / "in.tif").resolve())


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


def test_folder_run_warns_once_about_skipped_files(tmp_path, weights, capsys):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", _vol(), photometric="minisblack")
    for name in ("notes.txt", "b.csv", "c.md", "d.log"):
        (src / name).write_text("x")
    assert main(["denoise", str(src), str(dst), "--weights", str(weights), "-q"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warned == [f"warning: {src}: skipped 4 files that are not an OCT image: b.csv, c.md, d.log, ..."]


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
    (tmp_path / "empty" / "scans").mkdir()  # images one level down are not searched: say so
    rc = main(["denoise", str(tmp_path / "empty"), str(tmp_path / "out"), "-w", str(weights)])
    _one_line_error(capsys, rc, "no TIFF, PNG, JPEG or vendor OCT files in this folder (subfolders are not "
                                "searched: scans)")


def test_folder_run_says_it_skipped_subfolders(tmp_path, weights, capsys):
    src = tmp_path / "in"
    (src / "left eye").mkdir(parents=True)
    (src / ".hidden").mkdir()
    tifffile.imwrite(src / "a.tif", _vol(), photometric="minisblack")
    assert main(["denoise", str(src), str(tmp_path / "out"), "--weights", str(weights), "-q"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warned == [f"warning: {src}: skipped 1 subfolder (not searched): left eye"]
    import warnings

    from napari_hdcyclegan.denoise_files import plan_jobs

    (src / "out").mkdir()  # OUT inside IN, as after a first run: not named as skipped
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        plan_jobs(src, src / "out")
    assert [str(w.message) for w in seen] == [f"{src}: skipped 1 subfolder (not searched): left eye"]


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "napari_hdcyclegan", "denoise", str(tmp_path / "missing.tif"),
                           str(tmp_path / "out.tif")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "Traceback" not in proc.stderr


def test_boundaries_csv(tmp_path, weights, capsys):
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


def test_a_folders_boundaries_csv_names_each_b_scans_file(tmp_path, weights, capsys):
    import imageio.v3 as iio

    from napari_hdcyclegan.boundaries import read_boundaries_csv, write_boundary_channel
    from napari_hdcyclegan.simulate import simulate_volume

    write_boundary_channel(weights, {"stage": "init", "channel": 0, "how": "test"})
    vol = simulate_volume(n_bscans=2, seed=1, shape=(64, 48))
    (tmp_path / "scans").mkdir()
    for name, bscan in zip(("scan10.png", "scan2.png"), vol.hn):
        iio.imwrite(tmp_path / "scans" / name, (np.clip(bscan, 0, 1) * 255).astype(np.uint8))
    rc = main(["boundaries", str(tmp_path / "scans"), str(tmp_path / "b.csv"), "-w", str(weights), "-q",
               "--axial-um", "3.87"])
    assert rc == 0, capsys.readouterr().err
    lines = (tmp_path / "b.csv").read_text().splitlines()
    assert lines[0] == "bscan,ascan,ILM,RPE,thickness_um,file"
    assert lines[1].split(",")[0] == "0" and lines[1].endswith(",scan2.png")  # natural order: scan2 first
    assert lines[-1].split(",")[0] == "1" and lines[-1].endswith(",scan10.png")
    assert read_boundaries_csv(tmp_path / "b.csv")["ILM"].shape == (2, 48)  # still reads back


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


# ---------------------------------------------------------------- issue 10: data loss to end


@pytest.fixture(scope="module")
def identity_weights(tmp_path_factory):
    """A residual generator starts as the identity: what goes in must come out, range and dtype kept."""
    path = tmp_path_factory.mktemp("model") / "ident"
    config = ModelConfig(generator_width=4, residual=True, name="ident", trained=True,
                         normalisation={"method": "dtype"})
    save_model(path, {"G_L": Generator(4, residual=True)}, config)
    return path


def _run(src, dst, weights, *extra):
    return main(["denoise", str(src), str(dst), "-w", str(weights), "-d", "cpu", "-q", *extra])


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "f2", "f8", ">i2", ">f4", "u2"])
def test_outputs_of_any_dtype_read_back_as_the_volume(tmp_path, weights, n, dtype):
    from napari_hdcyclegan.io import read_oct, write_tiff

    data = (_vol((n, 24, 32), np.float64) / 10 - 30).astype(dtype)
    write_tiff(tmp_path / "in.tif", data, scale=(120.0, 3.87, 11.45), exact_dtype=True)
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights) == 0
    img = read_oct(tmp_path / "out.tif")  # what the napari reader sees
    assert img.data.shape == (n, 24, 32) and img.data.dtype == np.dtype(dtype).newbyteorder("=")
    assert img.scale == (120.0, 3.87, 11.45) and img.metadata["provenance"]["model"] == "tiny"
    assert tifffile.imread(tmp_path / "out.tif").shape == (n, 24, 32)


def test_planar_rgb_input_volume_is_denoised_whole(tmp_path, weights, capsys):
    import warnings

    data = _vol((3, 24, 32), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tifffile.imwrite(tmp_path / "in.tif", data)  # no photometric: one planar RGB page
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights) == 0
    assert tifffile.imread(tmp_path / "out.tif").shape == (3, 24, 32)
    assert "stack of 3 b-scans" in capsys.readouterr().err


@pytest.mark.parametrize("dtype,lo,hi", [(np.uint16, 0, 4095), (np.int16, -300, 700), (np.int8, -100, 100),
                                         (np.int32, 0, 255), (np.uint8, 0, 255)])
def test_integer_ranges_survive_the_round_trip(tmp_path, identity_weights, dtype, lo, hi):
    data = np.random.default_rng(0).integers(lo, hi + 1, (3, 24, 32)).astype(dtype)
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack")
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", identity_weights) == 0
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == data.dtype
    np.testing.assert_array_equal(out, data)  # 12-bit stays 12-bit, negatives stay negative


def test_all_tiff_series_are_denoised(tmp_path, weights):
    data = _vol((7, 24, 32))
    tifffile.imwrite(tmp_path / "in.tif", data[:3], photometric="minisblack")
    tifffile.imwrite(tmp_path / "in.tif", data[3:], photometric="minisblack", append=True)
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights) == 0
    assert tifffile.imread(tmp_path / "out.tif").shape == (7, 24, 32)


def test_vendor_and_tiff_of_one_stem_get_two_outputs(tmp_path, weights, capsys):
    pytest.importorskip("eyepy")
    import shutil

    import napari_hdcyclegan

    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", _vol(), photometric="minisblack")
    shutil.copy(Path(napari_hdcyclegan.__file__).parent / "data" / "heidelberg_circle.vol", src / "a.vol")
    assert main(["denoise", str(src), str(tmp_path / "out"), "-w", str(weights), "-d", "cpu", "-q",
                 "-b", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "a.vol.tif"]
    assert tifffile.imread(tmp_path / "out" / "a.tif").shape == (3, 24, 32)
    from napari_hdcyclegan.io import read_oct

    assert read_oct(tmp_path / "out" / "a.vol.tif").data.shape == (1, 496, 768)
    assert "a.vol is written as a.vol.tif" in capsys.readouterr().err


def _interrupting_pages(monkeypatch, action):
    """Make the denoised page stream do ``action`` after its first batch."""
    from napari_hdcyclegan import denoise_files

    real = denoise_files._denoised_pages

    def pages(*args):
        stream = real(*args)
        yield next(stream)
        action()
        yield from stream

    monkeypatch.setattr(denoise_files, "_denoised_pages", pages)


@pytest.mark.parametrize("how,rc", [("ctrl-c", 130), ("sigterm", 143), ("disk-full", 2)])
def test_interrupted_or_failed_write_keeps_the_previous_output(tmp_path, weights, monkeypatch, capsys, how, rc):
    import os
    import signal

    tifffile.imwrite(tmp_path / "in.tif", _vol((6, 24, 32)), photometric="minisblack")
    old = np.full((2, 24, 32), 7, np.uint16)
    tifffile.imwrite(tmp_path / "out.tif", old, photometric="minisblack")

    def act():
        if how == "ctrl-c":
            raise KeyboardInterrupt
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        raise OSError(28, "No space left on device")

    _interrupting_pages(monkeypatch, act)
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights, "-b", "2") == rc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]  # no temporary file left
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), old)
    assert signal.getsignal(signal.SIGTERM) is not None
    if how == "disk-full":
        _one_line_error(capsys, rc, "No space left")


def test_sigterm_in_a_subprocess_leaves_no_temporary_file(tmp_path, weights):
    import signal
    import time

    tifffile.imwrite(tmp_path / "in.tif", _vol((400, 96, 96)), photometric="minisblack")
    proc = subprocess.Popen([sys.executable, "-m", "napari_hdcyclegan", "denoise", str(tmp_path / "in.tif"),
                             str(tmp_path / "out.tif"), "-w", str(weights), "-d", "cpu", "-q", "-b", "1"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not list(tmp_path.glob(".out.*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (143, 0), err  # 0 only if it finished before the signal
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [] and "Traceback" not in err


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_out_linked_to_in_is_refused(tmp_path, weights, capsys, link):
    import os

    data = _vol()
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack")
    (os.link if link == "hard" else os.symlink)(tmp_path / "in.tif", tmp_path / "out.tif")
    rc = _run(tmp_path / "in.tif", tmp_path / "out.tif", weights)
    _one_line_error(capsys, rc, "OUT is the input file")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "in.tif"), data)


def test_out_folder_linked_to_in_folder_is_refused(tmp_path, weights, capsys):
    import os

    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", _vol(), photometric="minisblack")
    os.symlink(tmp_path / "in", tmp_path / "out")
    rc = _run(tmp_path / "in", tmp_path / "out", weights)
    _one_line_error(capsys, rc, "OUT must differ from IN")


def _no_compute(monkeypatch):
    from napari_hdcyclegan.engine import Denoiser

    def fail(*args, **kwargs):
        raise AssertionError("computed before the output was checked")

    monkeypatch.setattr(Denoiser, "iter_denoise", fail)


@pytest.mark.parametrize("name,shape,dtype,match", [
    ("out.xyz", (3, 24, 32), np.uint16, "unsupported output type"),
    ("out.png", (3, 24, 32), np.uint8, "volume cannot be written"),
    ("out.png", (24, 32), np.float32, "cannot store dtype float32"),
    ("out.png", (24, 32), np.int16, "cannot store dtype int16"),
    ("out.jpg", (24, 32), np.uint8, "JPEG output is refused"),
    ("missing/out.tif", (24, 32), np.uint8, "output folder does not exist"),
])
def test_output_checked_before_compute(tmp_path, weights, monkeypatch, capsys, name, shape, dtype, match):
    _no_compute(monkeypatch)
    tifffile.imwrite(tmp_path / "in.tif", _vol(shape, dtype), photometric="minisblack")
    rc = _run(tmp_path / "in.tif", tmp_path / name, weights)
    _one_line_error(capsys, rc, match)


def test_out_of_memory_fails_one_file_and_the_folder_goes_on(tmp_path, weights, monkeypatch, capsys):
    from napari_hdcyclegan import denoise_files

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(src / name, _vol(), photometric="minisblack")
    real = denoise_files.denoise_file

    def denoise_file(f, out, denoiser, *args):
        if f.name == "a.tif":
            raise MemoryError()
        return real(f, out, denoiser, *args)

    monkeypatch.setattr(denoise_files, "denoise_file", denoise_file)
    rc = _run(src, tmp_path / "out", weights)
    err = capsys.readouterr().err
    assert rc == 2 and "a.tif: out of memory" in err and "1 of 2 files failed" in err and "Traceback" not in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b.tif"]


def test_folder_errors_name_the_file(tmp_path, weights, capsys):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "good.tif", _vol(), photometric="minisblack")
    tifffile.imwrite(src / "small.tif", np.zeros((4, 4), np.uint8))
    rc = _run(src, tmp_path / "out", weights)
    err = capsys.readouterr().err
    assert rc == 2 and any(line.startswith("error:") and "small.tif" in line and "at least" in line
                           for line in err.splitlines())


@pytest.mark.parametrize("key,value", [("generator_width", "16"), ("n_res", 10**9), ("format_version", "2")])
def test_wrongly_typed_config_is_one_line(tmp_path, weights, capsys, key, value):
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(weights, bad)
    config = json.loads((bad / "config.json").read_text())
    config[key] = value
    (bad / "config.json").write_text(json.dumps(config))
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    rc = _run(tmp_path / "in.tif", tmp_path / "out.tif", bad)
    _one_line_error(capsys, rc, key)


def test_nan_weights_are_one_line_and_nothing_written(tmp_path, capsys):
    gen = Generator(4)
    with torch.no_grad():
        next(gen.parameters()).fill_(float("nan"))
    save_model(tmp_path / "nan", {"G_L": gen}, ModelConfig(generator_width=4, name="nan", trained=True))
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    rc = _run(tmp_path / "in.tif", tmp_path / "out.tif", tmp_path / "nan")
    _one_line_error(capsys, rc, "NaN")
    assert not (tmp_path / "out.tif").exists()


def test_internal_value_errors_keep_their_traceback(tmp_path, weights, monkeypatch):
    from napari_hdcyclegan import denoise_files

    monkeypatch.setattr(denoise_files, "denoise_file", lambda *a: (_ for _ in ()).throw(ValueError("a bug")))
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    with pytest.raises(ValueError, match="a bug"):
        _run(tmp_path / "in.tif", tmp_path / "out.tif", weights)


def test_output_is_streamed_not_held_in_memory(tmp_path, weights):
    import tracemalloc

    data = _vol((240, 96, 96))  # 4.4 MB of uint16; a batch of 2 is 37 kB
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack")
    assert _run(tmp_path / "in.tif", tmp_path / "warm.tif", weights, "-b", "2") == 0
    tracemalloc.start()
    try:
        assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights, "-b", "2") == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < data.nbytes / 4, peak  # neither the input nor the output is ever whole in memory
    assert tifffile.imread(tmp_path / "out.tif").shape == data.shape


def test_dim_bscans_lifted_for_the_model_are_said_and_recorded(tmp_path, capsys):
    from napari_hdcyclegan.io import read_oct

    torch.manual_seed(0)
    model = tmp_path / "dimmed"
    save_model(model, {"G_L": Generator(4)}, ModelConfig(generator_width=4, name="dimmed", trained=True,
                                                         normalisation={"method": "dtype", "dim_median": 0.4}))
    rng = np.random.default_rng(0)
    vol = np.clip(rng.normal(100, 20, (3, 32, 40)), 0, 255).astype(np.uint8)  # median ~100/255: at the level
    vol[1] //= 2  # one b-scan exported at half the gain
    tifffile.imwrite(tmp_path / "in.tif", vol)
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "-w", str(model), "-q"]) == 0
    assert "1 of 3 b-scans are dimmer than dimmed's training scans" in capsys.readouterr().err
    gains = read_oct(tmp_path / "out.tif").metadata["provenance"]["dim_gains"]
    assert gains[0] == gains[2] == 1.0 and 1.9 < gains[1] <= 2.0


def test_the_background_taken_down_for_the_model_is_recorded_per_bscan(tmp_path):
    from napari_hdcyclegan.io import read_oct

    torch.manual_seed(0)
    model = tmp_path / "floored"
    save_model(model, {"G_L": Generator(4)}, ModelConfig(generator_width=4, name="floored", trained=True,
                                                         normalisation={"method": "dtype", "floor_percentile": 0.5}))
    vol = np.random.default_rng(0).integers(0, 150, (3, 32, 40)).astype(np.uint8)
    vol[:, :2] = 0  # a black background ...
    vol[1] += 50  # ... but in one b-scan exported grey
    tifffile.imwrite(tmp_path / "in.tif", vol)
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "-w", str(model), "-q"]) == 0
    assert read_oct(tmp_path / "out.tif").metadata["provenance"]["floor_offsets"] == [0.0, round(50 / 255, 6), 0.0]


def test_sigterm_reported_by_interrupted_c_code_as_another_error_still_exits_143(monkeypatch, capsys):
    """SIGTERM inside numpy's tofile (tifffile writing a page) surfaced as a TypeError: exit 1 and a
    traceback instead of "terminated" and 143."""
    import os
    import signal

    import napari_hdcyclegan.__main__ as cli

    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:  # what the C code did with the handler's exception
            raise TypeError("expected str, bytes or os.PathLike object, not BufferedWriter") from None
        return 0

    monkeypatch.setitem(cli.COMMANDS, "models", command)
    assert main(["models"]) == 143
    assert capsys.readouterr().err.strip().endswith("error: terminated")
    monkeypatch.setitem(cli.COMMANDS, "models", lambda args: (_ for _ in ()).throw(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):  # without the signal, a bug keeps its traceback
        main(["models"])
