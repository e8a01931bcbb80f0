"""Tests of the b-scan statistics on synthetic images whose statistics are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_hdcyclegan import speckle_stats as ss


def _layered(rng: np.random.Generator, noise: float = 0.05, shape=(200, 300)) -> np.ndarray:
    """Dark vitreous (rows < 60), a retina at 0.5 (60..140) with a bright band at 120..126, dark below."""
    img = np.full(shape, 0.1)
    img[60:140] = 0.5
    img[120:127] = 0.9
    return img + noise * rng.standard_normal(shape)


@pytest.mark.parametrize("sigma", [0.0, 1.0, 1.5])
def test_autocorrelation_of_filtered_white_noise(sigma):
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter1d(rng.standard_normal((400, 400)), sigma, axis=0) if sigma else rng.standard_normal(
        (400, 400))
    expected = np.exp(-np.array([1, 2, 3]) ** 2 / (4 * sigma**2)) if sigma else np.zeros(3)
    # the sigma-4 high-pass biases the estimate by up to about -0.08 for a grain of 1-1.5 px
    np.testing.assert_allclose(ss.autocorrelation(x, axis=0), expected, atol=0.07)
    np.testing.assert_allclose(ss.autocorrelation(x, axis=1), 0.0, atol=0.09)  # white laterally


def test_autocorrelation_mask_restricts_pairs():
    x = np.random.default_rng(1).standard_normal((100, 100))
    x[:, 50:] = ndimage.gaussian_filter1d(x[:, 50:], 1.0, axis=1)
    mask = np.zeros(x.shape, bool)
    mask[:, :45] = True
    assert abs(ss.autocorrelation(x, (1,), axis=1, mask=mask)[0]) < 0.05
    assert ss.autocorrelation(x, (1,), axis=1, mask=~mask)[0] > 0.5


def test_local_std_of_white_noise():
    x = 0.3 + 0.05 * np.random.default_rng(2).standard_normal((200, 200))
    assert np.median(ss.local_std(x, 9)) == pytest.approx(0.05, rel=0.1)
    assert ss.local_std(np.full((20, 20), 0.4)).max() < 1e-6


def test_local_entropy_flat_is_zero_and_noise_is_high():
    assert ss.local_entropy(np.full((30, 30), 0.5)).max() == 0.0
    assert ss.local_entropy(np.random.default_rng(3).uniform(0, 1, (60, 60)))[20:40, 20:40].mean() > 5.0


def test_regions_find_the_layers():
    img = _layered(np.random.default_rng(4))
    reg = ss.find_regions(img)
    assert np.nanmedian(np.abs(reg.ilm - 60)) <= 2
    assert np.nanmedian(np.abs(reg.peak - 123)) <= 2
    assert reg.vitreous[:50].mean() > 0.9 and not reg.vitreous[60:].any()
    assert not reg.retina[:60].any() and reg.retina[70:110].all()
    assert reg.choroid[131:160].all() and not reg.choroid[:128].any()


def test_bscan_stats_recovers_known_levels():
    img = _layered(np.random.default_rng(5), noise=0.04)
    s = ss.bscan_stats(img)
    assert s["vitreous_mean"] == pytest.approx(0.1, abs=0.01)
    assert s["vitreous_p95"] - s["vitreous_p05"] == pytest.approx(2 * 1.645 * 0.04, rel=0.1)
    assert s["vitreous_noise"] == pytest.approx(0.04, rel=0.2)  # high-pass keeps most of white noise
    assert s["profile_+0"] == pytest.approx(0.9, abs=0.03) and s["profile_-30"] == pytest.approx(0.5, abs=0.03)
    assert abs(s["acf_axial_1"]) < 0.1 and abs(s["acf_lateral_1"]) < 0.1  # white noise
    assert s["retina_px"] == pytest.approx(63, abs=3)
    assert set(s) >= {"choroid_local_std", "retina_entropy", "acf_lateral_3", "profile_+60"}


def test_bscan_stats_sees_correlated_speckle():
    rng = np.random.default_rng(6)
    img = _layered(rng, noise=0.0)
    img += ndimage.gaussian_filter(rng.standard_normal(img.shape), (1.5, 0.0)) * 0.1
    s = ss.bscan_stats(img)
    assert s["acf_axial_1"] > 0.6 and abs(s["acf_lateral_1"]) < 0.1
