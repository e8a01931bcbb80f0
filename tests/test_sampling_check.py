"""scripts/sampling_check.py: the other samplings it makes of a scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

check = load_script("sampling_check")


def test_fewer_a_scans_are_every_other_one_without_interpolation() -> None:
    image = np.random.default_rng(0).random((4, 9))
    np.testing.assert_array_equal(check.resample_columns(image, 0.5), image[:, 0::2])
    np.testing.assert_array_equal(check.resample_columns(image, 0.5, start=1), image[:, 1::2])
    np.testing.assert_array_equal(check.resample_columns(image, 1 / 3), image[:, 0::3])
    np.testing.assert_array_equal(check.resample_columns(image, 1), image)


def test_more_a_scans_interpolate_linearly_between_the_ends() -> None:
    ramp = np.tile(np.arange(10, dtype=np.float64) * 3.0, (2, 1))
    dense = check.resample_columns(ramp, 2)
    assert dense.shape == (2, 20)
    np.testing.assert_allclose(dense, np.tile(np.linspace(0, 27, 20), (2, 1)))  # a ramp stays a ramp
    noise = np.random.default_rng(1).normal(size=(64, 200))
    dense = check.resample_columns(noise, 2)
    # neighbouring A-scans now share their noise, as in a denser acquisition
    assert np.corrcoef(dense[:, :-1].ravel(), dense[:, 1:].ravel())[0, 1] > 0.5


@pytest.mark.parametrize("factor", [0, -1, 0.4, 0.7])
def test_factors_that_are_not_a_sampling_are_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        check.resample_columns(np.zeros((2, 8)), factor)


SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.skipif(not (SHARED / "tools" / "real_scan_check.py").is_file(),
                    reason="needs the shared tools (../shared)")
def test_scores_of_an_identity_method_on_a_synthetic_scan() -> None:
    """The copy, its labels and the split are taken alike: an identity reproduces the native copy exactly
    (agreement at the PSNR cap), and its split PSNR is the raw scan's."""
    import sys

    sys.path.insert(0, str(SHARED / "tools"))
    try:
        import real_scan_check as rc
    finally:
        sys.path.remove(str(SHARED / "tools"))
    rng = np.random.default_rng(3)
    rows = np.arange(120)[:, None]
    image = np.clip(np.where((rows > 40) & (rows < 80), 160.0, 40.0) + rng.normal(0, 20, (120, 256)), 0, 255)
    label = np.array([np.full(256, r, dtype=np.float64) for r in (40, 50, 60, 70, 75, 78, 79, 80)])
    identity = lambda sigma: (lambda x: np.asarray(x, dtype=np.float64))  # noqa: E731
    for factor in (0.5, 2.0):
        agree, cnr, native_cnr, split = check.scores(identity, image, factor, 1.0, image, label, rc)
        assert agree > 100 and cnr == pytest.approx(native_cnr)
        assert np.isnan(split) == (factor != 0.5)
    assert split_of_raw(rc, image) == pytest.approx(check.scores(identity, image, 0.5, 1.0, image, label, rc)[3])


def split_of_raw(rc, image: np.ndarray) -> float:
    """The tool's split PSNR of the raw scan (each half against the other)."""
    even, odd = rc.halves(image)
    return rc.split_psnr(even, odd, image)
