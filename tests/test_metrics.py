"""Tests of the metrics, DFT registration and signal/background masks on synthetic retinas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.ndimage import shift as nd_shift

from napari_hdcyclegan import metrics

BANDS = {"rnfl": (0.30, 0.36, 0.85), "inner": (0.36, 0.62, 0.40), "rpe": (0.62, 0.68, 0.95),
         "choroid": (0.68, 0.80, 0.50)}


def retina(shape=(128, 160), seed=0, speckle=0.0):
    """Synthetic b-scan in [0, 1]: wavy bands on dark vitreous, vessel shadows, optional speckle."""
    h, w = shape
    x = np.arange(w)[None, :]
    rows = np.arange(h)[:, None] + 4 * np.sin(x / 11.0) + 3 * np.cos(x / 29.0)
    img = np.full(shape, 0.08)
    for top, bottom, level in BANDS.values():
        img[(rows >= top * h) & (rows < bottom * h)] = level
    img *= 1 - 0.4 * np.exp(-((x - 0.3 * w) ** 2) / 8.0) - 0.3 * np.exp(-((x - 0.7 * w) ** 2) / 6.0)
    if speckle:
        rng = np.random.default_rng(seed)
        grain = gaussian_filter(rng.normal(0, 1, shape), (1.0, 0.5))
        img = img + speckle * grain / grain.std()
    return np.clip(img, 0, 1)


def band_mask(shape, name):
    h, w = shape
    x = np.arange(w)[None, :]
    rows = np.arange(h)[:, None] + 4 * np.sin(x / 11.0) + 3 * np.cos(x / 29.0)
    top, bottom, _ = BANDS[name]
    return np.broadcast_to((rows >= top * h) & (rows < bottom * h), shape)


def test_psnr_known_values():
    ref = np.zeros((8, 8), np.uint8)
    test = ref.copy()
    assert metrics.psnr(test, ref) == np.inf
    test[:] = 5  # MSE 25 on uint8: 10 log10(255^2 / 25)
    assert metrics.psnr(test, ref) == pytest.approx(10 * np.log10(255**2 / 25))
    f = np.full((4, 4), 0.1, np.float32)
    assert metrics.psnr(f, np.zeros_like(f)) == pytest.approx(20.0, abs=1e-4)  # data range 1
    assert metrics.psnr(f, np.zeros_like(f), data_range=2.0) == pytest.approx(20 + 20 * np.log10(2), abs=1e-4)
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_ssim_settings():
    ref = retina((64, 64))
    assert metrics.ssim(ref, ref) == pytest.approx(1.0)
    noisy = retina((64, 64), speckle=0.1)
    s = metrics.ssim(noisy, ref)
    assert 0 < s < 0.9
    from skimage.metrics import structural_similarity
    assert s == pytest.approx(structural_similarity(noisy, ref, data_range=1.0, gaussian_weights=True,
                                                    sigma=1.5, use_sample_covariance=False))


def test_msr_cnr_enl_known():
    img = np.zeros((20, 20))
    sig = np.zeros_like(img, bool)
    sig[2:8, 2:18] = True
    bg = np.zeros_like(img, bool)
    bg[12:18, 2:18] = True
    rng = np.random.default_rng(0)
    img[sig] = 10 + rng.choice([-1.0, 1.0], sig.sum())  # mean 10, std ~1
    img[bg] = 2 + rng.choice([-1.0, 1.0], bg.sum())
    s_sig, s_bg = img[sig].std(), img[bg].std()
    assert metrics.msr(img, sig) == pytest.approx(img[sig].mean() / s_sig)
    lin = abs(img[sig].mean() - img[bg].mean()) / np.sqrt(s_sig**2 + s_bg**2)
    assert metrics.cnr(img, sig, bg) == pytest.approx(lin)
    assert metrics.cnr_db(img, sig, bg) == pytest.approx(10 * np.log10(lin))
    assert metrics.enl(img, bg) == pytest.approx(img[bg].mean() ** 2 / img[bg].var())
    with pytest.raises(ValueError):
        metrics.msr(img, np.zeros_like(sig))


def test_denoising_raises_scores():
    ref = retina(seed=1)
    noisy = retina(seed=2, speckle=0.15)
    masks = metrics.signal_background_masks(ref)
    raw = metrics.score_pair(noisy, ref, masks)
    smooth = metrics.score_pair(gaussian_filter(noisy, 1.5), ref, masks)
    assert set(raw) >= {"PSNR", "SSIM", "MSR", "CNR", "CNR_dB"}
    for key in ("PSNR", "SSIM", "MSR", "CNR"):
        assert smooth[key] > raw[key], key


def test_register_recovers_shift():
    ref = retina(seed=3, speckle=0.15)
    clean_shifted = nd_shift(retina(), (3, -2), order=1, mode="nearest")
    moving = np.clip(clean_shifted + (retina(seed=4, speckle=0.15) - retina()), 0, 1)
    out, shift = metrics.register(moving, ref)
    assert shift == pytest.approx([-3, 2], abs=0.3)
    assert out.shape == moving.shape and out.dtype == moving.dtype
    assert metrics.psnr(out, retina()) > metrics.psnr(moving, retina()) + 3
    u8, shift8 = metrics.register((moving * 255).astype(np.uint8), (ref * 255).astype(np.uint8))
    assert u8.dtype == np.uint8 and shift8 == pytest.approx([-3, 2], abs=0.3)


def test_register_refuses_spurious_shifts():
    ref = retina(seed=5, speckle=0.15)
    rng = np.random.default_rng(6)
    noise = rng.random(ref.shape)  # nothing in common with the reference
    out, shift = metrics.register(noise, ref)
    assert np.all(shift == 0) and np.array_equal(out, noise)
    far = nd_shift(ref, (25, 0), order=1, mode="nearest")  # beyond the 10 px cap
    out, shift = metrics.register(far, ref, max_shift=10)
    assert np.all(shift == 0) and np.array_equal(out, far)
    same = retina(seed=7, speckle=0.15)  # aligned: nothing to gain
    _, shift = metrics.register(same, ref)
    assert np.all(np.abs(shift) <= 0.5)


def test_masks_land_on_the_right_layers():
    shape = (128, 160)
    ref = retina(shape, seed=8, speckle=0.05)
    signal, background = metrics.signal_background_masks(ref)
    bright = band_mask(shape, "rnfl") | band_mask(shape, "rpe")
    assert signal.sum() > 200 and background.sum() > 2000
    assert (signal & bright).sum() / signal.sum() > 0.8  # signal sits in the bright bands
    assert (signal & band_mask(shape, "inner")).sum() < 0.1 * signal.sum()
    assert background[10:16].mean() > 0.8  # vitreous above the retina
    assert not (background & (band_mask(shape, "inner") | bright)).any()
    assert not background[:8].any() and not background[:, -8:].any()  # image border excluded
    contours, level = metrics.retina_contours(ref)
    assert contours and 0.08 < level < 0.6


def test_masks_on_simulated_bscan():
    from napari_hdcyclegan import simulate

    s = simulate.simulate_bscan(seed=3, shape=(192, 128))
    signal, background = metrics.signal_background_masks(s.ln)
    rows = np.arange(192)[:, None]
    ilm, rpe = s.boundaries["ILM"][None, :], s.boundaries["RPE"][None, :]
    assert (background & (rows > ilm + 2) & (rows < rpe - 2)).sum() == 0  # no background in retina
    assert (background & (rows < ilm)).sum() > 0.25 * background.sum()  # vitreous is background
    inside = (rows >= ilm - 3) & (rows <= np.nanmax(s.boundaries.get("BM", s.boundaries["RPE"])) + 40)
    assert (signal & inside).sum() / signal.sum() > 0.9
    assert s.ln[signal].mean() > s.ln[background].mean() + 0.3


def test_score_methods_reuses_masks_and_registers():
    ref = retina(seed=9)
    noisy = retina(seed=10, speckle=0.15)
    outs = {"raw": noisy, "smooth": nd_shift(gaussian_filter(noisy, 1.5), (2, 0), mode="nearest")}
    scores = metrics.score_methods(outs, ref)
    assert scores["smooth"]["shift_rows"] == pytest.approx(-2, abs=0.3)
    assert scores["smooth"]["PSNR"] > scores["raw"]["PSNR"]
    with pytest.raises(ValueError):
        metrics.signal_background_masks(np.zeros((32, 32)))


def test_fourier_translate_keeps_noise():
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 1, (64, 64))
    moved = metrics.fourier_translate(noise, np.array([0.5, -0.5]))
    assert moved.std() > 0.85 * noise.std()  # linear interpolation would give ~0.5x
    back = metrics.fourier_translate(metrics.fourier_translate(noise, np.array([3.0, 2.0])),
                                     np.array([-3.0, -2.0]))
    assert np.allclose(back[8:-8, 8:-8], noise[8:-8, 8:-8], atol=1e-6)


def test_no_reference_measures_are_re_exported() -> None:
    from napari_hdcyclegan import noise_measures

    for name in ("column_halves", "split_psnr", "offset_free_psnr", "axial_noise_correlation", "lateral_noise_ratio"):
        assert getattr(metrics, name) is getattr(noise_measures, name)


def test_the_default_data_range_follows_the_values_as_the_denoiser_maps_them():
    """12-bit data in uint16 is scored on 4095, not 65535 (PSNR 24 dB too high); data with negative
    values and floats beyond [0, 1] on their own range."""
    rng = np.random.default_rng(0)
    ref = (rng.random((32, 32)) * 200).astype(np.uint8)
    noisy = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255).astype(np.uint8)
    as12 = metrics.psnr(noisy.astype(np.uint16) * 16, ref.astype(np.uint16) * 16)
    assert as12 == pytest.approx(metrics.psnr(noisy, ref) + 20 * np.log10(4095 / (255 * 16)), abs=1e-9)
    assert metrics.default_data_range(np.array([[-300, 700]], np.int16)) == 1000.0
    assert metrics.default_data_range(np.array([[0.2, 0.9]])) == 1.0
    assert metrics.default_data_range(np.array([[10.0, 250.0, np.nan]])) == 240.0
    assert metrics.default_data_range(np.array([[True]])) == 1.0


@pytest.mark.parametrize("shape", [(6, 20), (10, 20), (3, 20, 20)])
def test_ssim_of_a_tiny_image_says_why_it_cannot_be_scored(shape):
    with pytest.raises(ValueError, match="SSIM needs at least 11 pixels along every axis"):
        metrics.ssim(np.zeros(shape), np.zeros(shape))
    assert metrics.ssim(np.ones((11, 20)), np.ones((11, 20))) == pytest.approx(1.0)
