"""Tests of the per-b-scan random simulation mode (random_params / simulate_from_params)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_hdcyclegan import simulate as sim
from napari_hdcyclegan.speckle_stats import bscan_stats


def _small(seed: int, **kw) -> sim.BscanParams:
    """Random parameters shrunk to a cheap size and frame count."""
    p = sim.random_params(seed)
    return replace(p, shape=(200, 192), hn_frames=min(p.hn_frames, 3), ln_frames=4, **kw)


def test_draws_cover_the_ranges():
    ps = [sim.random_params(s) for s in range(200)]
    frames = np.array([p.hn_frames for p in ps])
    widths = np.array([p.shape[1] for p in ps])
    assert frames.min() == 1 and frames.max() >= 60 and (frames <= 100).all()
    assert widths.min() < 450 and widths.max() > 1300 and (widths >= 384).all() and (widths <= 1536).all()
    assert {p.geometry for p in ps} == set(sim.GEOMETRIES)
    assert {p.pathology for p in ps} == {None, "drusen", "fluid", "detachment"}
    assert any(p.hyaloid > 0 for p in ps) and any(p.hyaloid == 0 for p in ps)
    assert any(p.shift_px < -0.35 * p.shape[0] for p in ps)  # some retinas fold over the top edge
    assert min(p.psf[0] for p in ps) < 0.4 and max(p.psf[0] for p in ps) > 1.4


def test_random_params_reproducible():
    assert sim.random_params(3) == sim.random_params(np.random.default_rng(3))
    assert sim.random_params(3) != sim.random_params(4)


def test_simulate_from_params_contract():
    p = _small(1)
    b = sim.simulate_from_params(p)
    for img in (b.hn, b.ln, b.clean):
        assert img.shape == (200, 192) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert b.frames_n == {"hn": p.hn_frames, "ln": 4}
    rows = np.stack([b.boundaries[n] for n in sim.BOUNDARY_NAMES])
    assert (np.diff(rows, axis=0) >= -1e-4).all()
    np.testing.assert_array_equal(sim.simulate_from_params(p).hn, b.hn)
    assert b.metadata["geometry"] == p.geometry and b.metadata["um_per_px"] == p.um_per_px


def test_ln_closer_to_clean_than_hn():
    b = sim.simulate_from_params(replace(_small(2), hn_frames=1, ln_frames=30, art_blur_px=0.0))
    err = [float(np.mean((x - b.clean) ** 2)) for x in (b.hn, b.ln)]
    assert err[1] < 0.5 * err[0]


def test_hn_realisations_share_the_scene_not_the_speckle():
    p = replace(_small(2), hn_frames=2, art_blur_px=0.0)
    reps = sim.hn_realisations(p, 6, seed=1)
    assert reps.shape == (6, 200, 192) and reps.dtype == np.float32 and 0 <= reps.min() and reps.max() <= 1
    np.testing.assert_array_equal(reps, sim.hn_realisations(p, 6, seed=1))
    assert not np.array_equal(reps[0], reps[1])
    hn = sim.simulate_from_params(p).hn  # the same scene: its mean and the realisations' agree
    assert abs(float(hn.mean() - reps.mean())) < 0.01
    # the mean of six is a better estimate of another acquisition than any one of them is
    err_one = float(np.mean((reps[0] - hn) ** 2))
    err_mean = float(np.mean((reps[1:].mean(axis=0) - hn) ** 2))
    assert err_mean < 0.75 * err_one


def test_hn_realisations_refuses_zero():
    with pytest.raises(ValueError, match="at least 1"):
        sim.hn_realisations(_small(0), 0)


def test_fold_mirrors_tissue_into_the_top():
    p = _small(5)
    flat = sim.simulate_from_params(replace(p, shift_px=0.0, hyaloid=0.0))
    folded = sim.simulate_from_params(replace(p, shift_px=-0.55 * 200, fold_gain=1.0, hyaloid=0.0))
    assert flat.boundaries["ILM"].min() > 0 and folded.boundaries["ILM"].min() < 0
    assert folded.clean[:10].mean() > flat.clean[:10].mean() + 0.05


def test_circle_scan_has_no_foveal_pit():
    b = sim.simulate_from_params(_small(6, geometry="circle", pathology=None))
    thick = b.boundaries["RPE"] - b.boundaries["ILM"]
    rnfl = b.boundaries["RNFL_GCL"] - b.boundaries["ILM"]
    assert thick.min() > 0.6 * np.median(thick)  # no pit
    assert rnfl.max() > 2 * rnfl.min()  # the RNFL double hump


def test_more_frames_less_speckle():
    p = replace(_small(7), art_blur_px=0.0, psf=(0.8, 0.5), display_floor=0.3, display_peak=1.0,
                shift_px=0.0, hyaloid=0.0)
    noise = [bscan_stats(sim.simulate_from_params(replace(p, hn_frames=n)).hn)["vitreous_noise"] for n in (1, 40)]
    assert noise[0] > 2.5 * noise[1]


def test_truth_pairs_alternate_the_speckle_regimes():
    from napari_hdcyclegan.speckle_stats import bscan_stats

    pairs = sim.truth_pairs(4, k=8, seed=3)  # full size: the statistics need the layers' homogeneous regions
    assert len(pairs) == 4 and all(s.shape == t.shape == (496, 512) for s, t in pairs)
    lateral = [bscan_stats(scan)["acf_lateral_1"] for scan, _ in pairs]
    assert min(lateral[0], lateral[2]) > max(lateral[1], lateral[3]) + 0.2  # shared, independent, shared, ...
    for scan, truth in pairs:  # the truth is the scene without most of the speckle
        assert float(np.mean((truth - truth.mean()) ** 2)) < float(np.mean((scan - scan.mean()) ** 2))
        assert 0.001 < float(np.mean((scan - truth) ** 2)) < 0.2


def test_realisation_stacks_can_leave_the_fold_out():
    args = (12, 2, 11, (160, 192))
    folded, flat = sim.realisation_stacks(*args), sim.realisation_stacks(*args, folds=False)
    touched = 0
    for p, a, b in zip(sim.regime_params(12, 11, (160, 192)), folded, flat):
        rows = np.nonzero(np.abs(a - b).max(axis=(0, 2)) > 0)[0]
        if rows.size:  # the mirror lies at the top and only adds intensity; the display mapping is the same
            touched += 1
            assert p.shift_px < 0 and np.array_equal(a[:, rows.max() + 1:], b[:, rows.max() + 1:])
            assert float((a - b)[:, : rows.max() + 1].mean()) > 0
    assert 0 < touched < 12


def test_realisation_stacks_share_the_scene_not_the_speckle():
    stacks = sim.realisation_stacks(2, 3, seed=11, shape=(160, 192))
    assert [s.shape for s in stacks] == [(3, 160, 192)] * 2 and all(s.dtype == np.float32 for s in stacks)
    assert np.array_equal(stacks[0], sim.hn_realisations(sim.regime_params(1, 11, (160, 192))[0], 3, seed=11))
    for s in stacks:
        d1 = s[0] - s[1]  # speckle only
        assert 0.001 < float(np.mean(d1 ** 2)) < 0.2 and not np.array_equal(s[1], s[2])
        mean_corr = np.corrcoef(s[0].ravel(), s[1].ravel())[0, 1]  # the same scene under both
        assert mean_corr > 0.5
        assert abs(np.corrcoef((s[0] - s[2]).ravel(), (s[1] - s[2]).ravel())[0, 1] - 0.5) < 0.1  # shared: s[2] only
