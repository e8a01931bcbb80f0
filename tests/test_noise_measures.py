"""Tests of the no-reference measures of one noisy b-scan (split PSNR, noise texture)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from napari_hdcyclegan import noise_measures as nm


def test_split_psnr_of_white_noise_and_of_a_perfect_denoiser():
    rng = np.random.default_rng(3)
    scene = np.tile(np.linspace(0.2, 0.8, 64)[:, None], (1, 256))  # constant along the A-scans
    noisy = scene + rng.normal(0, 0.05, scene.shape)
    # halves differ by noise of sigma*sqrt(2): PSNR = -20 log10(0.05 sqrt 2) = 23.0 dB
    assert nm.split_psnr(noisy) == pytest.approx(23.0, abs=0.3)
    # a perfect denoiser leaves only one half's noise: 3 dB better
    assert nm.split_psnr(noisy, lambda half: scene[:, : half.shape[1]]) == pytest.approx(26.0, abs=0.3)
    with pytest.raises(ValueError, match="2 columns"):
        nm.split_psnr(np.zeros((4, 1)))


def test_axial_noise_correlation_measures_texture_not_level():
    rng = np.random.default_rng(0)
    rows = np.arange(96)[:, None]
    scene = np.where((rows > 30) & (rows < 60), 0.7, 0.2) + np.zeros((96, 128))
    grain = gaussian_filter1d(rng.normal(size=scene.shape), 1.0, axis=0)
    grain /= grain.std()
    white = rng.normal(size=scene.shape)
    for sigma in (0.02, 0.2):
        assert abs(nm.axial_noise_correlation(scene + sigma * white)) < 0.1
        assert nm.axial_noise_correlation(scene + sigma * grain) > 0.6
    noisy = scene + 0.1 * grain
    assert nm.axial_noise_correlation(noisy * 40 + 7) == pytest.approx(nm.axial_noise_correlation(noisy))
    noisy[5, 6] = np.nan
    assert np.isfinite(nm.axial_noise_correlation(noisy))
    assert np.isnan(nm.axial_noise_correlation(np.ones((8, 8))))


def test_lateral_noise_ratio_tells_shared_from_independent_speckle() -> None:
    rng = np.random.default_rng(0)
    scene = np.linspace(0.2, 0.8, 120)[:, None] * np.ones((1, 200))  # varies along A-scans, not across
    independent = scene + rng.normal(0, 0.05, scene.shape)
    shared = scene + gaussian_filter1d(rng.normal(0, 0.05, scene.shape), 1.0, axis=1)
    assert 0.9 < nm.lateral_noise_ratio(independent) < 1.1
    assert nm.lateral_noise_ratio(shared) < 0.6
    assert 0.9 < nm.lateral_noise_ratio(np.stack([independent, independent])) < 1.1  # a volume
    assert np.isnan(nm.lateral_noise_ratio(scene))  # nothing varies across A-scans
    with pytest.raises(ValueError, match="3 A-scans"):
        nm.lateral_noise_ratio(np.zeros((10, 2)))


def test_offset_free_psnr_ignores_a_uniform_offset() -> None:
    d = np.random.default_rng(1).normal(0, 0.1, (20, 30))
    assert nm.offset_free_psnr(d + 0.3) == pytest.approx(nm.offset_free_psnr(d))
    assert nm.offset_free_psnr(d) == pytest.approx(-10 * np.log10(d.var()))  # range 1: 1 / variance
    assert nm.offset_free_psnr(d, data_range=10.0) == pytest.approx(nm.offset_free_psnr(d) + 20.0)
