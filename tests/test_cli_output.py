"""CLI outputs that cannot be written: full disk, no permission, lossy formats. Errors name the output
the user gave (never the hidden temporary file), unwritable folders are refused before the model runs,
and the previous output stays as it was with no temporary file left."""

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_hdcyclegan.__main__ import main
from napari_hdcyclegan.errors import OutputWriteError
from napari_hdcyclegan.io.atomic import atomic_output

pytestmark = pytest.mark.usefixtures("release_engine")


def _vol(shape=(6, 24, 32), dtype=np.uint16):
    return (np.random.default_rng(0).random(shape) * 1000).astype(dtype)


def _run(src, dst, weights, *extra):
    return main(["denoise", str(src), str(dst), "-w", str(weights), "-d", "cpu", "-q", *extra])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert ".part" not in err, err  # never the hidden temporary file
    return errors[0]


def _no_compute(monkeypatch):
    from napari_hdcyclegan.engine import Denoiser

    def fail(*args, **kwargs):
        raise AssertionError("computed before the output was checked")

    monkeypatch.setattr(Denoiser, "iter_denoise", fail)


def _fail_after_first_batch(monkeypatch, exc: OSError) -> None:
    """Make the denoised page stream raise ``exc`` (what the disk says) after its first batch."""
    from napari_hdcyclegan import denoise_files

    real = denoise_files._denoised_pages

    def pages(*args):
        stream = real(*args)
        yield next(stream)
        raise exc

    monkeypatch.setattr(denoise_files, "_denoised_pages", pages)


def _with_old_output(tmp_path: Path) -> np.ndarray:
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    old = np.full((2, 24, 32), 7, np.uint16)
    tifffile.imwrite(tmp_path / "out.tif", old, photometric="minisblack")
    return old


def _unchanged(tmp_path: Path, old: np.ndarray) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]  # no temporary file left
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), old)


def test_full_disk_names_out(tmp_path, weights, monkeypatch, capsys):
    old = _with_old_output(tmp_path)
    _fail_after_first_batch(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights, "-b", "2") == 2
    assert _error_line(capsys) == f"error: {tmp_path / 'out.tif'}: {os.strerror(errno.ENOSPC)}"
    _unchanged(tmp_path, old)


def test_short_write_on_a_full_disk_says_no_space(tmp_path, weights, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    old = _with_old_output(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12, 0))
    from napari_hdcyclegan import denoise_files

    monkeypatch.setattr(denoise_files, "_check_space", lambda dst, nbytes: None)  # the disk fills mid-write
    _fail_after_first_batch(monkeypatch, OSError("405000 requested and 194160 written"))  # numpy's tofile
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights, "-b", "2") == 2
    line = _error_line(capsys)
    no_space = os.strerror(errno.ENOSPC)
    assert line == f"error: {tmp_path / 'out.tif'}: {no_space} (194160 of 405000 bytes of a block written)"
    _unchanged(tmp_path, old)


def test_a_real_failed_write_names_out(tmp_path, weights):
    """A file size limit makes the kernel refuse the write half way, as a full disk does."""
    old = _with_old_output(tmp_path)
    tifffile.imwrite(tmp_path / "in.tif", _vol((30, 48, 48)), photometric="minisblack")  # 138 kB
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, resource.RLIM_INFINITY)); "
            "from napari_hdcyclegan.__main__ import main; sys.exit(main(sys.argv[1:]))")
    argv = ["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "-w", str(weights), "-d", "cpu", "-q",
            "-b", "4"]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'out.tif'}: ") and ".part" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    _unchanged(tmp_path, old)


def test_too_little_free_space_is_refused_before_the_model_runs(tmp_path, weights, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    _no_compute(monkeypatch)
    old = _with_old_output(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    assert _run(tmp_path / "in.tif", tmp_path / "out.tif", weights) == 2
    line = _error_line(capsys)
    assert line.startswith(f"error: {tmp_path / 'out.tif'}: {os.strerror(errno.ENOSPC)} (the output needs 9.2 kB")
    _unchanged(tmp_path, old)


def _unwritable(monkeypatch, folder: Path) -> None:
    """Creating files in ``folder`` fails as in a folder without write permission (root ignores chmod)."""
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder / ".out.x1y2.part.tif"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_unwritable_folder_is_refused_before_the_model_runs(tmp_path, weights, monkeypatch, capsys):
    _no_compute(monkeypatch)
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    (tmp_path / "locked").mkdir()
    _unwritable(monkeypatch, tmp_path / "locked")
    assert _run(tmp_path / "in.tif", tmp_path / "locked" / "out.tif", weights) == 2
    line = _error_line(capsys)
    assert line.startswith(f"error: {tmp_path / 'locked' / 'out.tif'}: {os.strerror(errno.EACCES)}"), line


def test_unwritable_output_folder_of_a_folder_run_is_named(tmp_path, weights, monkeypatch, capsys):
    _no_compute(monkeypatch)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", _vol(), photometric="minisblack")
    (tmp_path / "out").mkdir()
    _unwritable(monkeypatch, tmp_path / "out")
    assert _run(tmp_path / "in", tmp_path / "out", weights) == 2
    assert _error_line(capsys).startswith(f"error: {tmp_path / 'out'}: {os.strerror(errno.EACCES)}")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused_before_the_model_runs(tmp_path, weights, monkeypatch, capsys):
    _no_compute(monkeypatch)
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o500)
    try:
        assert _run(tmp_path / "in.tif", tmp_path / "locked" / "out.tif", weights) == 2
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert _error_line(capsys).startswith(f"error: {tmp_path / 'locked' / 'out.tif'}: ")


def test_boundaries_refuse_an_unwritable_folder_before_the_model_runs(tmp_path, weights, monkeypatch, capsys):
    from napari_hdcyclegan import engine

    monkeypatch.setattr(engine, "get_denoiser", lambda *a, **k: pytest.fail("model loaded"))
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    (tmp_path / "locked").mkdir()
    _unwritable(monkeypatch, tmp_path / "locked")
    rc = main(["boundaries", str(tmp_path / "in.tif"), str(tmp_path / "locked" / "b.csv"), "-w", str(weights), "-q"])
    assert rc == 2
    assert _error_line(capsys).startswith(f"error: {tmp_path / 'locked' / 'b.csv'}: {os.strerror(errno.EACCES)}")


def test_boundaries_refuse_a_too_small_scan_naming_it_before_the_model_loads(tmp_path, weights, monkeypatch, capsys):
    from napari_hdcyclegan import engine

    monkeypatch.setattr(engine, "get_denoiser", lambda *a, **k: pytest.fail("model loaded"))
    monkeypatch.setattr(engine, "choose_denoiser", lambda *a, **k: pytest.fail("model loaded"))
    tifffile.imwrite(tmp_path / "tiny.tif", _vol((8, 8)), photometric="minisblack")
    for w in (str(weights), "auto"):
        rc = main(["boundaries", str(tmp_path / "tiny.tif"), str(tmp_path / "b.csv"), "-w", w, "-q"])
        assert rc == 2
        assert _error_line(capsys).startswith(f"error: {tmp_path / 'tiny.tif'}: b-scans must be at least 9x9")
    assert not (tmp_path / "b.csv").exists()


def test_atomic_output_names_the_target_and_leaves_nothing(tmp_path):
    target = tmp_path / "out.tif"
    target.write_bytes(b"old")
    with pytest.raises(OutputWriteError) as raised, atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(raised.value) == f"{target}: {os.strerror(errno.ENOSPC)}" and raised.value.errno == errno.ENOSPC
    assert isinstance(raised.value, OSError)  # callers that catch OSError still do
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"] and target.read_bytes() == b"old"


def test_atomic_output_names_the_target_when_the_temporary_file_cannot_be_made(tmp_path, monkeypatch):
    _unwritable(monkeypatch, tmp_path)
    with pytest.raises(OutputWriteError, match=f"^{tmp_path / 'out.tif'}: {os.strerror(errno.EACCES)}$"):
        with atomic_output(tmp_path / "out.tif"):
            pass


def test_atomic_output_keeps_errors_about_other_files(tmp_path):
    """An input that fails to read while pages stream in is the input's error, not the output's."""
    with pytest.raises(OSError) as raised, atomic_output(tmp_path / "out.tif"):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "in.tif"))
    assert not isinstance(raised.value, OutputWriteError) and raised.value.filename == str(tmp_path / "in.tif")
    assert list(tmp_path.iterdir()) == []


def test_jpeg_inputs_of_a_folder_are_written_as_png(tmp_path, weights, capsys):
    import imageio.v3 as iio

    src = tmp_path / "in"
    src.mkdir()
    iio.imwrite(src / "a.jpg", _vol((24, 32), np.uint8))
    iio.imwrite(src / "b.jpeg", _vol((24, 32), np.uint8))
    iio.imwrite(src / "a.png", _vol((24, 32), np.uint8))
    assert _run(src, tmp_path / "out", weights) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg.png", "a.png", "b.png"]
    png = iio.imread(tmp_path / "out" / "b.png")
    assert png.shape == (24, 32) and png.dtype == np.uint8
    assert "a.jpg is written as a.jpg.png" in capsys.readouterr().err


def test_a_jpeg_denoised_into_its_own_folder_leaves_the_other_files_there(tmp_path, weights, capsys):
    """`denoise J/scan.jpg J` wrote J/scan.png over another image of the folder."""
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "scan.jpg", _vol((24, 32), np.uint8))
    other = _vol((24, 32), np.uint8)[::-1].copy()
    iio.imwrite(tmp_path / "scan.png", other)
    assert _run(tmp_path / "scan.jpg", tmp_path, weights) == 0
    np.testing.assert_array_equal(iio.imread(tmp_path / "scan.png"), other)
    assert iio.imread(tmp_path / "scan.jpg.png").shape == (24, 32)
    assert "scan.jpg is written as scan.jpg.png" in capsys.readouterr().err
    # into another folder the converted name is the output's, and a rerun replaces it
    out = tmp_path / "out"
    out.mkdir()
    for _ in range(2):
        assert _run(tmp_path / "scan.jpg", out, weights) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scan.png"]


def test_a_one_bscan_stack_comes_back_as_a_stack(tmp_path, weights):
    """A (1, H, W) TIFF came back (H, W): same pixels, but a pipeline indexing b-scans broke."""
    from napari_hdcyclegan.io import read_oct

    tifffile.imwrite(tmp_path / "one.tif", _vol((1, 24, 32)), photometric="minisblack")
    tifffile.imwrite(tmp_path / "flat.tif", _vol((24, 32)), photometric="minisblack")
    tifffile.imwrite(tmp_path / "channel.tif", _vol((24, 32, 1)), photometric="minisblack")  # (H, W, 1): one b-scan
    for name, shape in (("one.tif", (1, 24, 32)), ("flat.tif", (24, 32)), ("channel.tif", (24, 32))):
        assert read_oct(tmp_path / name).data.shape == shape
        assert _run(tmp_path / name, tmp_path / f"out_{name}", weights) == 0
        assert read_oct(tmp_path / f"out_{name}").data.shape == shape
