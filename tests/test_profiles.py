"""Mean layer profiles: the change a denoiser makes to its input's profile around the brightest layer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from napari_hdcyclegan.profiles import brightest_rows, flattened_profile, mean_profile_change


def _retina(rng: np.random.Generator, shape: tuple[int, int] = (128, 300)) -> tuple[np.ndarray, np.ndarray]:
    """A tilted 'RPE' (bright, 3 px) with a thin 'IS/OS' line 8 rows above it; clean and speckled."""
    h, w = shape
    rpe = (70 + 0.1 * np.arange(w)).astype(int)
    clean = np.full(shape, 60.0)
    for c, r in enumerate(rpe):
        clean[r - 1:r + 2, c] = 200.0
        clean[r - 8, c] = 150.0
        clean[r - 30:r - 10, c] = 90.0
    noisy = clean * rng.gamma(4.0, 0.25, shape)  # multiplicative speckle, unit mean
    return clean, noisy


def test_brightest_rows_follow_a_tilted_layer() -> None:
    clean, _ = _retina(np.random.default_rng(0))
    rows = brightest_rows(clean)
    expected = (70 + 0.1 * np.arange(clean.shape[1])).astype(int)
    assert np.abs(rows - expected).max() <= 1
    with pytest.raises(ValueError, match="2D"):
        brightest_rows(clean[None])


def test_flattened_profile_lines_the_layers_up_and_skips_columns_outside() -> None:
    clean, _ = _retina(np.random.default_rng(0))
    rows = (70 + 0.1 * np.arange(clean.shape[1])).astype(int)
    prof = flattened_profile(clean, rows)
    assert prof.shape == (24 + 10 + 1,)
    assert prof[24] == 200.0 and prof[24 - 8] == 150.0 and prof[24 - 12] == 90.0
    rows[:5] = 2  # windows that leave the image: left out, not wrapped
    np.testing.assert_array_equal(flattened_profile(clean, rows), prof)
    assert np.isnan(flattened_profile(clean, np.zeros_like(rows))).all()


def test_profile_change_is_zero_for_identity_and_offsets_and_grows_when_a_thin_line_is_blurred() -> None:
    rng = np.random.default_rng(1)
    clean, noisy = _retina(rng)
    assert mean_profile_change(noisy, noisy) == 0.0
    assert mean_profile_change(noisy + 7.0, noisy) == pytest.approx(0.0, abs=1e-9)  # a global offset
    keeps_layers = gaussian_filter1d(noisy, 1.0, axis=1)  # lateral smoothing along a gentle tilt
    blurs_layers = gaussian_filter(noisy, 1.0)  # axial blur flattens the thin line into its neighbours
    kept, blurred = mean_profile_change(keeps_layers, noisy, clean), mean_profile_change(blurs_layers, noisy, clean)
    assert kept < 4.0 and blurred > 4 * kept
    # the noisy input's own brightest rows give the same answer on this scan
    assert mean_profile_change(blurs_layers, noisy) == pytest.approx(blurred, rel=0.2)


def test_a_noisy_input_as_its_own_guide_does_not_count_its_noise_peaks_as_a_layer() -> None:
    rng = np.random.default_rng(3)
    clean, _ = _retina(rng, (128, 600))
    noisy = clean * rng.gamma(1.0, 1.0, clean.shape)  # single-look speckle: a very noisy scan
    # the ideal denoiser (the clean scan) changes the noisy profile only by what noise is left in the
    # mean of 600 A-scans: as much as when the true rows are known ...
    ideal = mean_profile_change(clean, noisy)
    assert ideal < 1.3 * mean_profile_change(clean, noisy, guide=clean)
    # ... while rows found on the lightly smoothed noisy input sit on its noise peaks, a spike the
    # clean scan does not have
    rows = brightest_rows(noisy)
    spiked = flattened_profile(clean, rows) - flattened_profile(noisy, rows)
    assert np.sqrt(np.mean((spiked - spiked.mean()) ** 2)) > 1.5 * ideal


def test_profile_change_refuses_mismatched_shapes_and_is_nan_without_a_usable_column() -> None:
    img = np.zeros((40, 30))
    with pytest.raises(ValueError, match="share a 2D shape"):
        mean_profile_change(img, img[:, :20])
    with pytest.raises(ValueError, match="share a 2D shape"):
        mean_profile_change(img, img, img[:20])
    top = img.copy()
    top[0] = 1.0  # brightest row at the very top: no A-scan has 24 rows above it
    assert np.isnan(mean_profile_change(top, top))


def _steep_layers(shape: tuple[int, int] = (96, 160)) -> np.ndarray:
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    top = 20 + 0.4 * cols  # layers rising 0.4 px per A-scan: steep enough for a lateral blur to show
    return np.where((rows > top) & (rows < top + 12), 0.8, 0.2) + np.where(rows > top + 30, 0.3, 0.0)


def test_residual_edge_correlation_is_near_zero_for_noise_and_high_for_a_lateral_blur() -> None:
    from scipy.ndimage import gaussian_filter1d

    from napari_hdcyclegan.profiles import residual_edge_correlation

    clean = _steep_layers()
    noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape)
    assert abs(residual_edge_correlation(clean, noisy)) < 0.05  # the residual is the noise
    blurred = gaussian_filter1d(clean, 3.0, axis=1)  # edges smeared across A-scans
    assert residual_edge_correlation(blurred, noisy) > 0.2


def test_residual_edge_correlation_refuses_mismatched_shapes_and_is_nan_when_flat() -> None:
    from napari_hdcyclegan.profiles import residual_edge_correlation

    with pytest.raises(ValueError, match="share a 2D shape"):
        residual_edge_correlation(np.zeros((4, 5)), np.zeros((4, 6)))
    flat = np.full((20, 30), 0.5)
    assert np.isnan(residual_edge_correlation(flat, flat))
