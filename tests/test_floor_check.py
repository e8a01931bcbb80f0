"""scripts/floor_check.py: the model with and without its floor step, and what it reports."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script

check = load_script("floor_check")


def test_the_two_variants_differ_only_in_the_floor_step() -> None:
    with_floor, without = check.variants("spectralis-real")
    assert with_floor.normalisation["floor_percentile"] == 0.1 and "floor_percentile" not in without.normalisation
    assert with_floor.generator is without.generator
    other, _ = check.variants("spectralis-real", percentile=1.0)
    assert other.normalisation["floor_percentile"] == 1.0
    rng = np.random.default_rng(0)
    scan = rng.integers(0, 120, (32, 48)).astype(np.uint8)
    scan[:2] = 0  # a black background: both the same
    np.testing.assert_array_equal(with_floor.denoise(scan), without.denoise(scan))
    grey = scan + np.uint8(60)
    assert not np.array_equal(with_floor.denoise(grey), without.denoise(grey))
    with pytest.raises(SystemExit, match="no floor_percentile"):
        check.variants("bioptigen-duke")


def test_truth_psnr_and_the_summary() -> None:
    truth = np.linspace(0, 1, 1000).reshape(20, 50)
    assert check.truth_psnr(truth + 0.01, truth) == pytest.approx(20 * np.log10(0.99 / 0.01), abs=0.05)
    rows = [{"with": 30.0, "without": 30.0}, {"with": 31.0, "without": 30.0}, {"with": 29.9, "without": 30.0}]
    text = check.summary(rows)
    assert "3 scans, 2 changed by the floor step" in text and "mean +0.300 dB" in text
    assert "1 up and 1 down by over 0.05 dB" in text
    assert check.seed_range("2-4") == [2, 3, 4] and check.seed_range("5,7") == [5, 7]
