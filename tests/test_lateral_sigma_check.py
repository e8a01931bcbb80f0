"""scripts/lateral_sigma_check.py: the edge-preserving smoothing it measures (section 28 of docs/real_training.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_script

from napari_hdcyclegan.model.networks import lateral_smooth

check = load_script("lateral_sigma_check")


@pytest.mark.parametrize("width", [1, 3, 64])
def test_lateral_bilateral_with_a_wide_range_is_the_lateral_gaussian(width):
    x = torch.from_numpy(np.random.default_rng(1).random((2, 6, width)).astype(np.float32))
    np.testing.assert_allclose(check.lateral_bilateral(x, 2.0, 1e3).numpy(), lateral_smooth(x, 2.0).numpy(),
                               atol=1e-6)


def test_lateral_bilateral_averages_small_differences_and_keeps_a_step():
    rng = np.random.default_rng(2)
    step = np.where(np.arange(80) < 40, 0.3, 0.7).astype(np.float32)  # a vessel shadow's edge, 0.4 deep
    x = torch.from_numpy(np.tile(step, (8, 1)) + rng.normal(0, 0.01, (8, 80)).astype(np.float32))
    out = check.lateral_bilateral(x, 6.0, 0.03).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    for flat in (slice(5, 30), slice(50, 75)):  # the noise is averaged on either side
        assert out[:, flat].std(axis=1).max() < 0.5 * x.numpy()[:, flat].std(axis=1).min()
    np.testing.assert_allclose(out[:, :39], 0.3, atol=0.02)  # the step stays where it is, as deep
    np.testing.assert_allclose(out[:, 41:], 0.7, atol=0.02)
    blurred = lateral_smooth(x, 6.0).numpy()  # a Gaussian as wide moves the step into its neighbours
    assert np.abs(blurred[:, 34] - 0.3).min() > 0.05


@pytest.mark.parametrize("sigma,range_sigma", [(0.0, 0.03), (3.0, 0.0)])
def test_lateral_bilateral_is_off_at_zero(sigma, range_sigma):
    x = torch.rand(1, 5, 9)
    assert check.lateral_bilateral(x, sigma, range_sigma) is x


def test_local_wiener_keeps_the_estimate_where_the_residual_is_noise_and_puts_back_what_it_smoothed_away():
    rng = np.random.default_rng(3)
    scene = np.zeros((60, 120))
    scene[:, 60:] = 1.0  # a step the estimate below has lost
    raw = scene + rng.normal(0, 0.1, scene.shape)
    estimate = np.where(np.arange(120) < 55, 0.0, np.where(np.arange(120) >= 65, 1.0, 0.5)) * np.ones((60, 1))
    out = check.local_wiener(raw, estimate, 3.0, 1.5)
    assert out.shape == raw.shape and out.dtype == np.float64
    flat = (slice(None), slice(10, 40))
    np.testing.assert_allclose(out[flat], estimate[flat], atol=1e-9)  # noise only: the estimate stays
    edge = (slice(None), slice(57, 63))
    err_out, err_est = np.abs(out[edge] - scene[edge]).mean(), np.abs(estimate[edge] - scene[edge]).mean()
    assert err_out < 0.5 * err_est  # the lost step comes back (with its noise)
    between = (out - estimate) / np.where(raw == estimate, 1.0, raw - estimate)
    assert between.min() >= -1e-12 and between.max() <= 1 + 1e-12  # never past the raw value


def test_wiener_rows_follow_each_gaussian_only():
    fns = {"sigma 1.10": lambda x: x * 0.5, "sigma 1.10 + bilateral 6 px / 0.02": lambda x: x}
    out = check.with_wiener(fns, [(3.0, 1.5)])
    assert list(out) == ["sigma 1.10", "sigma 1.10 + bilateral 6 px / 0.02", "sigma 1.10 + wiener 3 px / 1.5"]
    x = np.random.default_rng(0).random((16, 16))
    np.testing.assert_allclose(out["sigma 1.10 + wiener 3 px / 1.5"](x), check.local_wiener(x, x * 0.5, 3.0, 1.5))


def test_local_wiener_takes_the_noise_level_away_from_black_padding():
    rng = np.random.default_rng(4)
    raw = np.clip(0.5 + rng.normal(0, 0.1, (60, 120)), 0.01, 1)
    raw[:, :60] = 0.0  # half the b-scan black padding: a residual of 0 there
    estimate = np.where(raw > 0, 0.5, 0.0)
    out = check.local_wiener(raw, estimate, 3.0, 1.5)
    tissue = (slice(None), slice(70, 120))
    # the tissue's own noise sets the level, so its noise stays out; a median over the whole b-scan (half
    # zeros) would have put it back
    assert np.abs(out[tissue] - 0.5).max() < 0.25 * np.abs(raw[tissue] - 0.5).max()


@pytest.mark.parametrize("normalisation", [{"method": "dtype", "floor_percentile": 0.5},
                                           {"method": "dtype", "dim_median": 0.6}, {"method": "dtype"}])
def test_the_sweep_at_a_sigma_is_the_denoiser_at_that_sigma(normalisation):
    # the sweep smooths the generator's own output once per sigma: it has to undo what the model's
    # normalisation did to the input (a grey background taken down, a dim b-scan lifted) as denoise does
    import torch

    from napari_hdcyclegan.denoiser import Denoiser
    from napari_hdcyclegan.model.checkpoint import ModelConfig
    from napari_hdcyclegan.model.networks import Generator

    torch.manual_seed(0)
    den = Denoiser(Generator(4), ModelConfig(generator_width=4, name="t", trained=True, normalisation=normalisation),
                   "cpu")
    scan = np.random.default_rng(0).integers(0, 120, (24, 40)).astype(np.uint8) + np.uint8(60)  # a grey floor
    for sigma, fn in zip((0.5, 2.0), check.sweep(den, [0.5, 2.0]).values()):
        expected = den.with_lateral_sigma(sigma).denoise(scan).astype(np.float64)
        assert np.abs(fn(scan) - expected).max() <= 1.0
