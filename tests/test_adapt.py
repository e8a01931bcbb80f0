"""Adaptation to one scan (napari_hdcyclegan.adapt) and the CLI's ``denoise --adapt``."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from conftest import cartoon_retina

from napari_hdcyclegan.adapt import CONSISTENCY, DEFAULT_STEPS, MAX_STEPS, iter_adapt
from napari_hdcyclegan.denoiser import Denoiser
from napari_hdcyclegan.errors import InputError
from napari_hdcyclegan.model.checkpoint import ModelConfig
from napari_hdcyclegan.model.networks import Generator
from napari_hdcyclegan.progress import drive

BANDS = ((20, 34, 120.0), (40, 46, 200.0))


def _denoiser(precision: str = "fp32") -> Denoiser:
    torch.manual_seed(0)
    config = ModelConfig(generator_width=4, name="tiny", trained=True, normalisation={"method": "dtype"})
    return Denoiser(Generator(width=4), config, "cpu", precision=precision)


def _weights(d: Denoiser) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in d.generator.state_dict().items()}


def test_adaptation_fits_the_scans_noise_and_leaves_the_base_model_alone() -> None:
    base = _denoiser()
    before = _weights(base)
    scan = cartoon_retina(3, 64, 96, BANDS, seed=1)
    steps = iter_adapt(base, scan, 40, lr=3e-3)
    progress = []
    try:
        while True:
            progress.append(next(steps))
    except StopIteration as stop:
        adapted, record = stop.value
    assert progress[0] == (0, 40) and progress[-1] == (40, 40) and len(progress) == 41
    # a random width-4 generator is far from a denoiser: 40 steps on the scan's own halves fix that
    assert record.kept and record.after_db > record.before_db + 1.0
    assert adapted is not base and adapted.name == "tiny+adapted" and adapted.trained
    assert all(torch.equal(before[k], v) for k, v in base.generator.state_dict().items())
    assert not any(p.requires_grad for p in adapted.generator.parameters())
    out = adapted.denoise(scan)
    assert out.shape == scan.shape and out.dtype == scan.dtype
    assert "kept" in record.describe("tiny") and record.to_json()["steps"] == 40


def test_an_adaptation_below_the_minimum_gain_returns_the_base_model() -> None:
    base = _denoiser()
    scan = cartoon_retina(1, 64, 96, BANDS, seed=2)[0]  # a single 2D b-scan
    model, record = drive(iter_adapt(base, scan, 3, min_gain=1e6))
    assert model is base and not record.kept
    assert "not kept" in record.describe("tiny") and "tiny's own" in record.describe("tiny")


def test_the_same_seed_gives_the_same_weights() -> None:
    scan = cartoon_retina(2, 48, 80, BANDS, seed=3)
    runs = [drive(iter_adapt(_denoiser(), scan, 5, lr=1e-3, seed=7, min_gain=-1e6))[0] for _ in range(2)]
    other = drive(iter_adapt(_denoiser(), scan, 5, lr=1e-3, seed=8, min_gain=-1e6))[0]
    a, b, c = (_weights(r) for r in (*runs, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_the_consistency_term_changes_the_training_and_is_recorded() -> None:
    scan = cartoon_retina(2, 48, 80, BANDS, seed=3)
    plain, r0 = drive(iter_adapt(_denoiser(), scan, 5, lr=1e-3, seed=7, min_gain=-1e6, consistency=0.0))
    default, r1 = drive(iter_adapt(_denoiser(), scan, 5, lr=1e-3, seed=7, min_gain=-1e6))
    assert r0.consistency == 0.0 and r1.consistency == CONSISTENCY > 0
    assert r1.to_json()["consistency"] == CONSISTENCY
    a, b = _weights(plain), _weights(default)
    assert not all(torch.equal(a[k], b[k]) for k in a)  # same crops, another loss


def test_small_inputs_train_on_smaller_crops() -> None:
    scan = cartoon_retina(1, 30, 40, ((10, 20, 150.0),), seed=4)
    model, record = drive(iter_adapt(_denoiser(), scan, 2, min_gain=-1e6))
    assert record.kept and model.denoise(scan).shape == scan.shape


@pytest.mark.parametrize("steps", [0, -1, 10**6])
def test_bad_step_counts_are_refused(steps: int) -> None:
    with pytest.raises(InputError, match="adaptation steps must be from 1"):
        drive(iter_adapt(_denoiser(), cartoon_retina(1, 32, 64, BANDS), steps))


def test_too_narrow_a_scan_is_refused() -> None:
    with pytest.raises(InputError, match="at least 12 A-scans wide"):
        drive(iter_adapt(_denoiser(), np.zeros((40, 10), np.uint8), 2))


def test_cli_adapt_records_the_adaptation(tmp_path, weights, capsys) -> None:
    from napari_hdcyclegan.__main__ import main
    from napari_hdcyclegan.cli_args import ADAPT_STEPS, MAX_ADAPT_STEPS
    from napari_hdcyclegan.io import read_oct

    # the CLI's copies (it imports no torch to parse arguments)
    assert ADAPT_STEPS == DEFAULT_STEPS and MAX_ADAPT_STEPS == MAX_STEPS
    scan = cartoon_retina(2, 48, 64, BANDS, seed=5)
    tifffile.imwrite(tmp_path / "in.tif", scan, photometric="minisblack")
    rc = main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "-w", str(weights),
               "-d", "cpu", "--adapt-steps", "3"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "adapting tiny to this input (3 steps)" in err and "held-out split PSNR" in err
    img = read_oct(tmp_path / "out.tif")
    record = img.metadata["provenance"]["adaptation"]
    assert record["steps"] == 3 and isinstance(record["kept"], bool)
    assert img.metadata["provenance"]["model"] == ("tiny+adapted" if record["kept"] else "tiny")
    assert np.asarray(img.data).shape == scan.shape
    for bad in ("0", str(MAX_STEPS + 1), "many"):
        with pytest.raises(SystemExit) as refused:
            main(["denoise", str(tmp_path / "in.tif"), str(tmp_path / "x.tif"), "--adapt-steps", bad])
        assert refused.value.code == 2 and not (tmp_path / "x.tif").exists()
    assert "--adapt-steps: must be from 1 to 5000, got 0" in capsys.readouterr().err


def test_cli_adapt_is_a_flag_that_leaves_the_paths_alone() -> None:
    from napari_hdcyclegan.cli_args import ADAPT_STEPS, adaptation_steps, build_parser

    parse = build_parser().parse_args
    # a flag: the word after it stays a path (with an optional number, "--adapt IN OUT" read IN as steps)
    assert adaptation_steps(parse(["denoise", "--adapt", "in.tif", "out.tif"])) == ADAPT_STEPS
    assert adaptation_steps(parse(["denoise", "in.tif", "out.tif", "--adapt-steps", "7"])) == 7
    assert adaptation_steps(parse(["denoise", "in.tif", "out.tif"])) is None


def test_a_non_finite_loss_leaves_the_weights_and_the_base_model_is_kept(monkeypatch) -> None:
    import napari_hdcyclegan.adapt as adapt

    real = adapt.run_generator
    monkeypatch.setattr(adapt, "run_generator", lambda gen, x: real(gen, x) * float("nan"))
    base = _denoiser()
    model, record = drive(iter_adapt(base, cartoon_retina(1, 48, 80, BANDS, seed=6), 3, min_gain=1e-9))
    assert model is base and not record.kept and record.after_db == pytest.approx(record.before_db)


def _shared_speckle_scan(seed: int = 3) -> np.ndarray:
    """A cartoon retina whose speckle is smoothed across A-scans, as on averaged Spectralis scans."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    clean = cartoon_retina(1, 64, 96, BANDS, seed=None)[0]
    speckle = gaussian_filter1d(rng.gamma(4.0, 0.25, size=clean.shape), 1.0, axis=1)
    return np.clip(clean * speckle / speckle.mean(), 0, 255).astype(np.uint8)


def test_scans_whose_a_scans_share_speckle_are_not_adapted() -> None:
    base = _denoiser()
    before = _weights(base)
    model, record = drive(iter_adapt(base, _shared_speckle_scan(), 5, lr=1e-3, min_gain=-1e6))
    assert model is base and not record.kept and record.steps == 0 and "share speckle" in record.skipped
    assert "not adapted" in record.describe("tiny") and "tiny's own" in record.describe("tiny")
    assert record.to_json()["before_db"] is None  # JSON-safe provenance
    assert all(torch.equal(before[k], v) for k, v in base.generator.state_dict().items())
    forced, forced_record = drive(iter_adapt(base, _shared_speckle_scan(), 5, lr=1e-3, min_gain=-1e6,
                                             shared_speckle=True))
    assert forced is not base and forced_record.kept and forced_record.steps == 5 and not forced_record.skipped


@pytest.mark.parametrize("blank", [np.full((2, 48, 64), np.nan, np.float32), np.full((48, 64), 7, np.uint16)])
def test_a_scan_without_contrast_is_not_adapted(blank: np.ndarray) -> None:
    """An all-NaN scan was "adapted" with a reported gain: both scores measured zeros."""
    base = _denoiser()
    before = _weights(base)
    model, record = drive(iter_adapt(base, blank, 5, lr=1e-3, min_gain=-1e6))
    assert model is base and not record.kept and record.steps == 0 and "no contrast" in record.skipped
    assert record.to_json()["after_db"] is None
    assert all(torch.equal(before[k], v) for k, v in base.generator.state_dict().items())
