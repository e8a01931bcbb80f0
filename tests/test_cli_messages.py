"""CLI messages: the model used is always said (also under -q, in demo, boundaries and the summary),
messages never land on a progress bar's line, and argument errors speak the user's language."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_hdcyclegan.__main__ import main
from napari_hdcyclegan.model import choice
from napari_hdcyclegan.model.checkpoint import ModelConfig, save_model
from napari_hdcyclegan.model.networks import Generator


def _model(path: Path, name: str) -> Path:
    torch.manual_seed(0)
    save_model(path, {"G_L": Generator(4)}, ModelConfig(generator_width=4, name=name, trained=True))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return _model(root / "a", "tiny-a"), _model(root / "b", "tiny-b")


pytestmark = pytest.mark.usefixtures("release_engine")


@pytest.fixture
def auto_picks(monkeypatch, models):
    """``auto`` picks model a for dim inputs and b for bright ones (no shipped model runs)."""
    def pick(data):
        bright = float(np.mean(np.asarray(data))) > 500
        return choice.ModelChoice(str(models[bright]), 20.0, f"test pick {'bright' if bright else 'dim'}")

    monkeypatch.setattr(choice, "choose_model", pick)
    return models


def _vol(shape=(3, 24, 32), dtype=np.uint16, level=1000.0):
    return (np.random.default_rng(0).random(shape) * level).astype(dtype)


def _lines(text: str) -> list[str]:
    """What a terminal shows of each line: the text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


# ------------------------------------------------------------------------------------------ the model used


def test_quiet_keeps_the_model_line_and_one_file_names_its_model(tmp_path, auto_picks, capsys):
    tifffile.imwrite(tmp_path / "in.tif", _vol(level=400), photometric="minisblack")
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "q.tif"), "-d", "cpu", "-q"]) == 0
    assert "model: tiny-a (auto: test pick dim; --weights overrides)" in _lines(capsys.readouterr().err)
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "-d", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"wrote 1 file(s) to {tmp_path / 'out.tif'} with tiny-a"


def test_folder_summary_names_each_model_chosen(tmp_path, auto_picks, capsys):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "dim.tif", _vol(level=400), photometric="minisblack")
    tifffile.imwrite(src / "bright.tif", _vol(level=2000), photometric="minisblack")
    tifffile.imwrite(src / "bright2.tif", _vol(level=2000), photometric="minisblack")
    assert main(["denoise", str(src), str(tmp_path / "out"), "-d", "cpu"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == (f"wrote 3 file(s) to {tmp_path / 'out'} with the model chosen per file: "
                   "tiny-a (1 file), tiny-b (2 files)")


def test_folder_of_one_model_names_it(tmp_path, auto_picks, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("x.tif", "y.tif"):
        tifffile.imwrite(src / name, _vol(level=400), photometric="minisblack")
    assert main(["denoise", str(src), str(tmp_path / "out"), "-d", "cpu", "-q"]) == 0
    err = _lines(capsys.readouterr().err)
    # one line per file, each naming its file (identical lines told the files apart by order only)
    assert [line for line in err if "model:" in line] == [
        f"{name}: model: tiny-a (auto: test pick dim; --weights overrides)" for name in ("x.tif", "y.tif")]
    assert main(["denoise", str(src), str(tmp_path / "out2"), "-d", "cpu"]) == 0
    assert capsys.readouterr().out.strip().endswith("with tiny-a")


def test_demo_says_which_model_auto_chose(tmp_path, auto_picks, monkeypatch, capsys):
    from napari_hdcyclegan import baselines

    monkeypatch.setitem(baselines.BASELINES, "bm3d", lambda *a, **k: (_ for _ in ()).throw(
        baselines.MissingExtraError("bm3d not installed (simulated)")))
    for quiet in (["-q"], []):
        assert main(["demo", "--out", str(tmp_path / "demo"), "--no-viewer", "-d", "cpu", *quiet]) == 0
        captured = capsys.readouterr()
        assert any(line.startswith("model: tiny-") and "(auto: test pick" in line for line in _lines(captured.err))
        assert ("with tiny-" in captured.out) == (not quiet)


def test_boundaries_under_auto_say_the_boundary_model(tmp_path, models, monkeypatch, capsys):
    from napari_hdcyclegan.boundaries import write_boundary_channel
    from napari_hdcyclegan.io import write_tiff
    from napari_hdcyclegan.simulate import simulate_volume

    write_boundary_channel(models[0], {"stage": "init", "channel": 0, "how": "test"})
    monkeypatch.setattr(choice, "BOUNDARY_MODEL", str(models[0]))
    vol = simulate_volume(n_bscans=1, seed=1, shape=(64, 48))
    write_tiff(tmp_path / "vol.tif", vol.hn, scale=(120.0, 3.87, 11.45))
    assert main(["boundaries", str(tmp_path / "vol.tif"), str(tmp_path / "b.csv"), "-d", "cpu", "-q"]) == 0
    err = _lines(capsys.readouterr().err)
    assert any(line.startswith("model: tiny-a (auto: the boundary model") for line in err), err
    assert (tmp_path / "b.csv").read_text().splitlines()[0] == "bscan,ascan,ILM,RPE,thickness_um"  # unchanged
    assert main(["boundaries", str(tmp_path / "vol.tif"), str(tmp_path / "c.csv"), "-d", "cpu"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'c.csv'} with tiny-a: ")


# --------------------------------------------------------------------------- messages and progress bars


def test_messages_are_never_appended_to_a_progress_bar(tmp_path, auto_picks, capsys):
    import warnings

    src = tmp_path / "in"
    src.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tifffile.imwrite(src / "planar.tif", _vol((3, 24, 32), np.uint8, 255))  # a warning: read as b-scans
    tifffile.imwrite(src / "small.tif", np.zeros((4, 4), np.uint8))  # an error
    assert main(["denoise", str(src), str(tmp_path / "out"), "-d", "cpu"]) == 2  # progress bars on
    lines = _lines(capsys.readouterr().err)
    said = [line for line in lines if any(word in line for word in ("model:", "warning:", "error:"))]
    starts = ("warning:", "error:", "planar.tif: model:")  # a folder run's `model:` line names its file
    assert len(said) >= 3 and all(line.startswith(starts) for line in said), lines


# ------------------------------------------------------------------------------------ arguments and errors


@pytest.mark.parametrize("flag,value,said", [
    ("--lateral-sigma", "abc", "expected a number, got 'abc'"),
    ("--lateral-sigma", "16.5", "lateral smoothing must be from 0 to 16 pixels, got 16.5"),
    ("--lateral-sigma", "nan", "expected a finite number, got 'nan'"),
    ("--batch-size", "two", "expected a whole number, got 'two'"),
    ("--batch-size", "0", "must be >= 1, got 0"),
])
def test_argument_errors_speak_the_users_language(tmp_path, capsys, flag, value, said):
    with pytest.raises(SystemExit) as refused:
        main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), flag, value])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and f"argument {flag}" in err and said in err, err
    assert "_" not in err.splitlines()[-1].split(":", 2)[-1]  # no internal function name


@pytest.mark.parametrize("argv,name", [
    (["denoise", "IN", ""], "OUT"),
    (["denoise", "", "OUT"], "IN"),
    (["boundaries", "IN", " "], "OUT.csv"),
    (["demo", "--no-viewer", "--out", ""], "--out"),
])
def test_an_empty_path_is_refused_not_taken_as_the_current_folder(tmp_path, monkeypatch, capsys, argv, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "IN").write_bytes(b"")  # IN exists: only the empty path can be refused
    with pytest.raises(SystemExit) as refused:
        main(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and f"argument {name}: an empty path" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IN"]  # nothing written to the current folder


def test_lateral_sigma_range_ends_are_accepted():
    from napari_hdcyclegan.__main__ import build_parser

    for value in ("0", "16"):
        args = build_parser().parse_args(["denoise", "in.tif", "out.tif", "--lateral-sigma", value])
        assert args.lateral_sigma == float(value)


def test_help_says_auto_the_boundary_default_the_range_and_what_quiet_hides(capsys):
    for command in ("denoise", "boundaries"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "auto (the default" in text and "model:, warning: and error: lines are always printed" in text
        if command == "boundaries":
            assert choice.BOUNDARY_MODEL in text
        else:
            assert "0 to 16" in text and "JPEG is refused" in text


@pytest.mark.parametrize("command", ["denoise", "boundaries", "demo"])
def test_device_help_lists_every_accepted_name(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    device_help = " ".join(capsys.readouterr().out.split()).split("--device DEVICE, -d DEVICE", 1)[1]
    for name in ("auto", "cpu", "cuda,", "cuda:N", "mps"):
        assert name in device_help, name


def test_parser_constants_match_the_models_and_import_no_torch():
    from napari_hdcyclegan import cli_args
    from napari_hdcyclegan.model.checkpoint import MAX_LATERAL_SIGMA

    assert (cli_args.AUTO, cli_args.BOUNDARY_MODEL) == (choice.AUTO, choice.BOUNDARY_MODEL)
    assert cli_args.MAX_LATERAL_SIGMA == MAX_LATERAL_SIGMA
    code = ("import sys; from napari_hdcyclegan.__main__ import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip() \
        == "False"


def test_demo_out_must_be_a_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file"), "--no-viewer", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'file'}: --out must be a folder (this is a file)"]


def test_single_file_errors_name_the_file(tmp_path, models, capsys):
    tifffile.imwrite(tmp_path / "tiny.tif", np.zeros((4, 4), np.uint8))
    rc = main(["denoise", str(tmp_path / "tiny.tif"), str(tmp_path / "o.tif"), "-w", str(models[0]), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith(f"error: {tmp_path / 'tiny.tif'}: b-scans must be at least"), err


def test_folder_failures_say_what_was_written_and_where(tmp_path, models, capsys):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "good.tif", _vol(), photometric="minisblack")
    tifffile.imwrite(src / "small.tif", np.zeros((4, 4), np.uint8))
    assert main(["denoise", str(src), str(tmp_path / "out"), "-w", str(models[0]), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: 1 of 2 files failed; 1 written to {tmp_path / 'out'}"
    (src / "good.tif").unlink()
    assert main(["denoise", str(src), str(tmp_path / "out2"), "-w", str(models[0]), "-q"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: 1 of 1 files failed; none written"
    assert not (tmp_path / "out2").exists()  # the folder this run created is not left behind empty
    (tmp_path / "out3").mkdir()  # a folder the user made stays, even when nothing was written into it
    assert main(["denoise", str(src), str(tmp_path / "out3"), "-w", str(models[0]), "-q"]) == 2
    assert (tmp_path / "out3").is_dir()


def test_a_flattening_outlier_is_one_line_and_writes_nothing(tmp_path, capsys):
    """A float TIFF with one 1e30 pixel came back as a flat b-scan, silently."""
    data = _vol((24, 32), np.float64, 200.0)
    data[3, 4] = 1e30
    tifffile.imwrite(tmp_path / "marker.tif", data)
    out = tmp_path / "o.tif"
    assert main(["denoise", str(tmp_path / "marker.tif"), str(out), "-w", "spectralis-real", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'marker.tif'}: a b-scan's values span 0")
    assert "1e+30" in err[0] and "set them to NaN" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker.tif"]  # no output, no temporary file


@pytest.mark.parametrize("weights", ["auto", "spectralis-real"])
def test_integer_no_data_markers_are_one_line_and_write_nothing(tmp_path, capsys, weights):
    """Ten pixels at 65535 in 12-bit uint16 data set a 16-bit range: the output came back 0..32768, silently."""
    data = np.random.default_rng(0).integers(450, 3826, (2, 48, 64)).astype(np.uint16)
    data[1, 0, :10] = 65535
    tifffile.imwrite(tmp_path / "marker.tif", data, photometric="minisblack")
    assert main(["denoise", str(tmp_path / "marker.tif"), str(tmp_path / "o.tif"), "-w", weights, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'marker.tif'}: values span 450 to 65535")
    assert "clip them" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker.tif"]


def test_a_bad_model_leaves_no_output_folder_tree(tmp_path, capsys):
    """A folder run into new nested folders with a missing --weights left the (empty) tree behind."""
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "good.tif", _vol(), photometric="minisblack")
    (tmp_path / "kept").mkdir()
    rc = main(["denoise", str(src), str(tmp_path / "kept" / "a" / "b"), "-w", str(tmp_path / "no-model"), "-q"])
    assert rc == 2 and "error:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "kept"]
    assert list((tmp_path / "kept").iterdir()) == []  # the user's own folder stays
    rc = main(["denoise", str(src), str(tmp_path / "new" / ".." / "out"), "-w", str(tmp_path / "no-model"), "-q"])
    assert rc == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["in", "kept"]  # "new" went too


def test_bscans_without_a_finite_pixel_are_named_and_kept(tmp_path, models, capsys):
    data = _vol((3, 24, 32), np.float32, 200.0)
    data[1] = np.nan
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack")
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"), "-w", str(models[0]), "-q"]) == 0
    assert "1 of 3 b-scans have no finite pixel" in capsys.readouterr().err
    out = tifffile.imread(tmp_path / "o.tif")
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()


def test_a_model_marked_untrained_is_said_so(tmp_path, capsys):
    torch.manual_seed(0)
    config = ModelConfig(generator_width=4, name="raw-net", trained=False)
    weights = save_model(tmp_path / "m", {"G_L": Generator(4)}, config)
    tifffile.imwrite(tmp_path / "in.tif", _vol(), photometric="minisblack")
    assert main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"), "-w", str(weights), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: raw-net is marked untrained in its config" in err


def test_auto_refuses_a_flattening_outlier_before_scoring_it(tmp_path, capsys):
    """Under auto, a 1e30 marker was scored ("split PSNR -528.2 dB"), a model named, then refused."""
    data = _vol((24, 32), np.float64, 200.0)
    data[3, 4] = 1e30
    tifffile.imwrite(tmp_path / "marker.tif", data)
    assert main(["denoise", str(tmp_path / "marker.tif"), str(tmp_path / "o.tif"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "values span" in err[0] and "dB" not in err[0], err


@pytest.mark.parametrize("weights", ["auto", "bioptigen-duke", "spectralis-real"])
def test_a_flattening_outlier_in_a_volume_names_its_bscan(tmp_path, capsys, weights):
    data = _vol((6, 24, 32), np.float32, 200.0)
    data[3, 4, 5] = 3e38  # b-scan 3 is not among those auto scores
    tifffile.imwrite(tmp_path / "v.tif", data, photometric="minisblack")
    assert main(["denoise", str(tmp_path / "v.tif"), str(tmp_path / "o.tif"), "-w", weights, "-q"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'v.tif'}: b-scan 3: values")


def test_auto_refuses_an_outlier_in_an_unscored_bscan_before_naming_a_model(tmp_path, capsys, monkeypatch):
    """Under auto, a marker in a b-scan it does not score was refused only after the `model:` line."""
    import napari_hdcyclegan.engine as engine

    chosen = []
    real = engine.choose_denoiser
    monkeypatch.setattr(engine, "choose_denoiser", lambda *a, **k: chosen.append(1) or real(*a, **k))
    data = _vol((12, 24, 32), np.float32, 200.0)
    scored = set(np.linspace(0, 11, 5).round().astype(int).tolist())  # the 5 evenly spaced ones auto scores
    bad = next(i for i in range(12) if i not in scored)
    data[bad, 4, 5] = 3e38
    tifffile.imwrite(tmp_path / "v.tif", data, photometric="minisblack")
    assert main(["denoise", str(tmp_path / "v.tif"), str(tmp_path / "o.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {tmp_path / 'v.tif'}: b-scan {bad}: values"), err
    assert not any(line.startswith("model:") for line in err), err  # no model named for a scan it refuses
    assert not chosen  # nor chosen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]


def test_linear_intensities_are_said_to_need_log_compression(tmp_path, models, capsys, linear_scan):
    linear = linear_scan((2, 64, 96))
    tifffile.imwrite(tmp_path / "lin.tif", linear, photometric="minisblack")
    assert main(["denoise", str(tmp_path / "lin.tif"), str(tmp_path / "o.tif"), "-w", str(models[0]), "-q"]) == 0
    err = capsys.readouterr().err
    assert "lin.tif looks like linear intensities" in err and "log-compress it first" in err
    assert tifffile.imread(tmp_path / "o.tif").shape == linear.shape  # denoised all the same, as asked
    from napari_hdcyclegan.intensity import log_display

    tifffile.imwrite(tmp_path / "disp.tif", log_display(linear), photometric="minisblack")
    assert main(["denoise", str(tmp_path / "disp.tif"), str(tmp_path / "o2.tif"), "-w", str(models[0]), "-q"]) == 0
    assert "linear" not in capsys.readouterr().err
