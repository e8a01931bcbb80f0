"""scripts/tradeoff_curve.py: a candidate's distance from the smoothing curve, and what it scores."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from conftest import load_script

curve = load_script("tradeoff_curve")


def test_the_curve_is_read_between_its_points_and_not_past_its_ends() -> None:
    points = [(27.5, 2.7), (27.2, 2.8), (27.0, 2.9)]  # more smoothing: split PSNR falls as CNR rises
    assert curve.curve_cnr(points, 27.5) == pytest.approx(2.7)
    assert curve.curve_cnr(points, 27.35) == pytest.approx(2.75)
    assert curve.curve_cnr(points, 27.1) == pytest.approx(2.85)
    assert math.isnan(curve.curve_cnr(points, 27.6))
    assert math.isnan(curve.curve_cnr(points, 26.9))
    assert math.isnan(curve.curve_cnr(points[:1], 27.0))


@pytest.mark.parametrize("points", [[(27.0, 2.9), (27.5, 2.7)], [(27.5, 2.7), (27.5, 2.8)],
                                    [(27.5, 2.7), (27.0, 2.8), (27.2, 2.9)]],
                         ids=["rising", "flat", "turning back"])
def test_a_curve_whose_split_psnr_does_not_fall_with_the_smoothing_is_refused(points) -> None:
    with pytest.raises(ValueError, match="does not fall strictly"):
        curve.curve_cnr(points, 27.2)


def test_residual_scaling_extrapolates_the_change_within_the_inputs_range() -> None:
    raw = np.array([[0, 100, 250]], np.uint8)
    halve = lambda x: x.astype(np.float64) / 2  # noqa: E731 - a "denoiser" that halves
    np.testing.assert_allclose(curve.residual_scaled(halve, 1.0)(raw), [[0, 50, 125]])
    np.testing.assert_allclose(curve.residual_scaled(halve, 0.0)(raw), [[0, 100, 250]])
    np.testing.assert_allclose(curve.residual_scaled(halve, 1.5)(raw), [[0, 25, 62.5]])
    double = lambda x: x.astype(np.float64) * 2  # noqa: E731
    np.testing.assert_allclose(curve.residual_scaled(double, 1.2)(raw), [[0, 220, 250]])
    np.testing.assert_allclose(curve.residual_scaled(double, 1.0)(np.array([10.0, 30.0, 200.0])), [20, 60, 200])


def test_a_mix_weighs_the_second_model_by_its_fraction() -> None:
    a = lambda x: np.zeros_like(x, dtype=np.float64)  # noqa: E731
    b = lambda x: np.full_like(x, 8.0, dtype=np.float64)  # noqa: E731
    x = np.ones((2, 3))
    assert np.all(curve.mixed(a, b, 0.25)(x) == 2.0)
    assert np.all(curve.mixed(a, b, 0.0)(x) == 0.0)
    assert np.all(curve.mixed(a, b, 1.0)(x) == 8.0)


def test_mix_arguments_name_the_weights_and_fractions_and_bad_ones_are_refused() -> None:
    assert curve.parse_mix("runs/a:b/export:0.25,0.5") == ("runs/a:b/export", [0.25, 0.5])
    for bad in ("export", "export:", ":0.5", "export:x", "export:1.5", "export:-0.1"):
        with pytest.raises(argparse.ArgumentTypeError, match="--mix"):
            curve.parse_mix(bad)


def test_the_bm3d_row_comes_from_the_cached_b_scans_only_as_the_shared_tool_averages() -> None:
    scans = [("Subject5_01", None, None), ("Subject5_02", None, None), ("Subject5_03", None, None)]
    cache = {"Subject5_01/x5": [[2.0, 4.0], [10.0, 20.0], 27.0],
             "Subject5_02/x5": [[1.0, 1.0, 1.0, 1.0], [5.0] * 4, 26.0],
             "Subject4_01/x5": [[9.0], [9.0], 99.0]}
    # the mean over b-scans of each b-scan's mean CNR (3 and 1), not the mean of all windows (10 / 6)
    assert curve.bm3d_row(scans, cache, 5.0) == (26.5, 2.0, 2)
    assert curve.bm3d_row(scans, {}, 5.0) is None
