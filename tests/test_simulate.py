"""Tests of the OCT simulator: speckle statistics against theory, geometry, reproducibility, cache."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hdcyclegan import simulate as sim
from napari_hdcyclegan.intensity import log_display

SMALL = (128, 128)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two [0, 1] images."""
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def bscan() -> sim.SimulatedBscan:
    """One full-size b-scan with few frames (cheap) shared by the geometry tests."""
    return sim.simulate_bscan(seed=1, hn_frames=2, ln_frames=6)


# ---- speckle statistics in a homogeneous field ---------------------------------------------------


def _homogeneous(n_frames: int, rho: float = 0.0, psf=None, seed: int = 0, shape=(256, 256)) -> np.ndarray:
    return sim.speckle_average(np.full(shape, 0.01, np.float32), n_frames, np.random.default_rng(seed), rho=rho,
                               psf=psf)


@pytest.mark.parametrize("psf", [None, (0.8, 0.5)])
def test_single_frame_fully_developed_speckle(psf):
    i = _homogeneous(1, psf=psf).astype(np.float64)
    assert i.mean() == pytest.approx(0.01, rel=0.03)  # unit-energy PSF keeps the mean
    assert i.std() / i.mean() == pytest.approx(1.0, abs=0.03)  # exponential intensity
    assert i.mean() ** 2 / i.var() == pytest.approx(1.0, abs=0.06)  # ENL 1
    amp = np.sqrt(i)
    assert amp.std() / amp.mean() == pytest.approx(0.523, abs=0.01)  # Rayleigh amplitude
    assert np.std(10 * np.log10(i)) == pytest.approx(5.57, abs=0.1)  # 10 log10(e) pi / sqrt(6)


@pytest.mark.parametrize("n", [4, 12])
def test_averaged_contrast_independent_frames(n):
    i = _homogeneous(n, shape=(192, 192))
    assert i.std() / i.mean() == pytest.approx(1 / np.sqrt(n), rel=0.05)


@pytest.mark.parametrize("n,rho", [(12, 0.05), (12, 0.2)])
def test_averaged_contrast_correlated_frames(n, rho):
    i = _homogeneous(n, rho=rho, shape=(192, 192))
    assert i.std() / i.mean() == pytest.approx(np.sqrt((1 + (n - 1) * rho) / n), rel=0.06)


def test_frame_correlation_is_rho():
    rng = np.random.default_rng(3)
    lin = np.ones((256, 256), np.float32)
    base = rng.standard_normal((2, 256, 256), dtype=np.float32) * np.float32(np.sqrt(0.5))
    a = sim.speckle_average(lin, 1, rng, rho=0.3, base=base)
    b = sim.speckle_average(lin, 1, rng, rho=0.3, base=base)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] == pytest.approx(0.3, abs=0.03)


def test_noise_floor_adds_its_power():
    i = sim.speckle_average(np.zeros((128, 128), np.float32), 4, np.random.default_rng(0), noise_floor=2e-4,
                            psf=(0.8, 0.5))
    assert i.mean() == pytest.approx(2e-4, rel=0.05)


def test_speckle_average_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="2-D"):
        sim.speckle_average(np.ones((2, 3, 4)), 1, rng)
    with pytest.raises(ValueError, match="n_frames"):
        sim.speckle_average(np.ones((8, 8)), 0, rng)
    with pytest.raises(ValueError, match="rho"):
        sim.speckle_average(np.ones((8, 8)), 2, rng, rho=1.0)


def test_intensity_psf_is_the_expected_speckle_intensity():
    lin = np.zeros((64, 64), np.float32)
    lin[:, 32:] = 1.0
    mean = sim.speckle_average(lin, 400, np.random.default_rng(0), psf=(0.8, 0.5))
    expected = sim.intensity_psf(lin, (0.8, 0.5))
    err = mean.mean(0) - expected.mean(0)  # per column; sampling error ~0.01
    assert np.abs(err).max() < 0.05
    assert abs(err[-3:].mean()) < 0.03 and abs(mean[:, 40:].mean() - 1.0) < 0.02  # no bright border


# ---- contract: shapes, dtypes, ranges, reproducibility --------------------------------------------


def test_bscan_contract(bscan):
    for img in (bscan.hn, bscan.ln, bscan.clean):
        assert img.shape == (496, 512) and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0
    assert {"ILM", "RPE", "BM", "CSI"} <= set(bscan.boundaries)
    assert set(bscan.boundaries) == set(sim.BOUNDARY_NAMES)
    for v in bscan.boundaries.values():
        assert v.shape == (512,) and v.dtype == np.float32 and np.isfinite(v).all()
    assert bscan.frames_n == {"hn": 2, "ln": 6}
    assert sim.SPECTRALIS_UM_PER_PX == {"axial": 3.87, "lateral": 11.45}


def test_seed_reproducible_and_distinct():
    a = sim.simulate_bscan(seed=5, shape=SMALL, hn_frames=2, ln_frames=3, pathology="random")
    b = sim.simulate_bscan(seed=5, shape=SMALL, hn_frames=2, ln_frames=3, pathology="random")
    c = sim.simulate_bscan(seed=6, shape=SMALL, hn_frames=2, ln_frames=3, pathology="random")
    for k in ("hn", "ln", "clean"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.allclose(a.clean, c.clean)
    assert not np.allclose(a.boundaries["ILM"], c.boundaries["ILM"])


def test_single_frame_works():
    b = sim.simulate_bscan(seed=2, shape=SMALL, hn_frames=1, ln_frames=1)
    assert b.hn.shape == SMALL and not np.array_equal(b.hn, b.ln)


@pytest.mark.parametrize("kwargs", [{"shape": (8, 8)}, {"hn_frames": 0}, {"ln_frames": 2.5},
                                    {"pathology": "glaucoma"}, {"mismatch": -1},
                                    {"um_per_px": {"axial": 3.87}}, {"um_per_px": {"axial": 1, "lateral": 1}}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        sim.simulate_bscan(**{"shape": SMALL, **kwargs})


# ---- geometry: boundaries are where the truth says -------------------------------------------------


def test_layer_order_and_thickness(bscan):
    b = bscan.boundaries
    rows = np.stack([b[n] for n in sim.BOUNDARY_NAMES])
    assert (np.diff(rows, axis=0) >= -1e-4).all()  # interfaces never cross
    assert (b["ILM"] < b["RPE"] - 20).all()
    um = bscan.metadata["um_per_px"]["axial"]
    assert um == pytest.approx(3.87)
    thick = (b["RPE"] - b["ILM"]) * um
    assert 170 < thick.min() and thick.max() < 450
    assert 200 < np.median(thick) < 400
    # the foveal pit is the thinnest place and lies near the middle
    assert abs(int(np.argmin(thick)) - 256) < 100
    assert b["ILM"].min() > 0 and b["CSI"].max() < 495


def test_clean_edges_at_boundaries(bscan):
    clean, b = bscan.clean, bscan.boundaries
    cols = np.arange(0, 512, 7)
    ilm = np.round(b["ILM"][cols]).astype(int)
    above, below = clean[ilm - 4, cols], clean[ilm + 4, cols]
    assert np.median(below - above) > 0.3  # dark vitreous over bright RNFL
    grad = np.diff(clean, axis=0)
    # the strongest rise in each column's top half is at the ILM (within a pixel)
    band = [grad[ilm[i] - 6:ilm[i] + 6, c] for i, c in enumerate(cols)]
    peak = np.array([np.argmax(g) for g in band]) - 6
    assert np.mean(np.abs(peak + 0.5) <= 1.5) > 0.9
    rpe = np.round(b["RPE"][cols]).astype(int)
    assert np.median(clean[rpe - 3, cols] - clean[rpe + 4, cols]) > 0.2  # bright RPE over darker choroid
    drop = [np.argmin(grad[rpe[i] - 6:rpe[i] + 6, c]) - 6 for i, c in enumerate(cols)]
    assert np.mean(np.abs(np.array(drop) + 0.5) <= 2.5) > 0.8


def test_ln_closer_to_clean_than_hn():
    b = sim.simulate_bscan(seed=3, shape=(256, 256), hn_frames=4, ln_frames=30)
    assert _psnr(b.ln, b.clean) > _psnr(b.hn, b.clean) + 1.0


def test_mismatch_moves_ln_only():
    kw = dict(seed=4, shape=(256, 256), hn_frames=3, ln_frames=12)
    a, m = sim.simulate_bscan(**kw), sim.simulate_bscan(mismatch=True, **kw)
    np.testing.assert_array_equal(a.hn, m.hn)
    np.testing.assert_array_equal(a.clean, m.clean)
    assert _psnr(m.ln, m.clean) < _psnr(a.ln, a.clean)


def test_spectralis_scale_window():
    b = sim.simulate_bscan(seed=0, shape=(192, 128), hn_frames=1, ln_frames=1, um_per_px=sim.SPECTRALIS_UM_PER_PX)
    assert b.metadata["um_per_px"] == sim.SPECTRALIS_UM_PER_PX
    b_ = b.boundaries
    assert 0 < b_["ILM"].min() and b_["RPE"].max() < 191
    assert 150 < np.median(b_["RPE"] - b_["ILM"]) * 3.87 < 450


def test_mismatch_strength_scales():
    kw = dict(seed=4, shape=(128, 128), hn_frames=2, ln_frames=8)
    weak, strong = sim.simulate_bscan(mismatch=0.3, **kw), sim.simulate_bscan(mismatch=3.0, **kw)
    assert _psnr(strong.ln, strong.clean) < _psnr(weak.ln, weak.clean)


@pytest.mark.parametrize("pathology", ["drusen", "fluid", "detachment"])
def test_pathology_changes_the_scene(pathology):
    kw = dict(seed=8, shape=(248, 256), hn_frames=1, ln_frames=1)
    healthy, sick = sim.simulate_bscan(**kw), sim.simulate_bscan(pathology=pathology, **kw)
    assert sick.metadata["pathology_drawn"] == pathology
    assert np.abs(sick.clean - healthy.clean).max() > 0.2
    if pathology == "drusen":
        assert (sick.boundaries["BM"] - sick.boundaries["RPE"]).max() > 3
    if pathology == "detachment":
        assert (sick.boundaries["SRF_RPE"] - sick.boundaries["IZ_SRF"]).max() > 3


def test_clean_is_display_of_blurred_reflectivity():
    b = sim.simulate_bscan(seed=0, shape=SMALL, hn_frames=1, ln_frames=1, psf=None)
    assert b.clean.min() >= 0 and b.clean.max() <= 1
    # without a PSF, clean is exactly the display of the scene: a round trip leaves it unchanged
    from napari_hdcyclegan.intensity import inverse_log_display

    np.testing.assert_allclose(log_display(inverse_log_display(b.clean)), b.clean, atol=1e-5)


# ---- volumes, cache, sample data ------------------------------------------------------------------


def test_volume_is_smooth_across_bscans():
    v = sim.simulate_volume(n_bscans=5, seed=2, shape=SMALL, hn_frames=1, ln_frames=2, spacing_um=400)
    assert v.hn.shape == v.ln.shape == v.clean.shape == (5, *SMALL)
    assert v.boundaries["ILM"].shape == (5, 128)
    step = np.abs(np.diff(v.boundaries["ILM"], axis=0))
    assert 0.01 < step.max() < 8  # neighbours differ, a little
    # the raster crosses the fovea: the pit is deepest in the middle slice, absent at the ends
    thinnest = (v.boundaries["RPE"] - v.boundaries["ILM"]).min(axis=1)
    assert int(np.argmin(thinnest)) == 2
    assert thinnest[2] < min(thinnest[0], thinnest[4]) - 2
    assert len(v) == 5 and v[1].hn.shape == SMALL
    assert v.scale[0] == 400


def test_cached_pairs_roundtrip(tmp_path, monkeypatch):
    calls = []
    real = sim.simulate_volume
    monkeypatch.setattr(sim, "simulate_volume", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = sim.cached_pairs(3, 7, SMALL, 1, 2, cache_dir=tmp_path, bscans_per_eye=2)
    b = sim.cached_pairs(3, 7, SMALL, 1, 2, cache_dir=tmp_path, bscans_per_eye=2)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 1  # two eyes simulated once
    assert not list(tmp_path.glob("*.tmp"))
    assert b.hn.shape == (3, *SMALL) and b.boundaries["RPE"].shape == (3, 128)
    np.testing.assert_array_equal(a.hn, b.hn)
    np.testing.assert_array_equal(a.boundaries["RPE"], b.boundaries["RPE"])
    assert b.metadata["seed"] == 7 and len(set(b.metadata["eye_seeds"])) == 2
    # the second eye is its own volume: same as simulating it alone
    eye1 = real(1, sim.eye_seed(7, 1), SMALL, 1, 2)
    np.testing.assert_array_equal(b.clean[2], eye1.clean[0])
    sim.cached_pairs(3, 7, SMALL, 1, 2, cache_dir=tmp_path, bscans_per_eye=2, pathology="drusen")
    assert len(list(tmp_path.glob("*.npz"))) == 2  # other settings, other file


def test_cached_pairs_one_eye_is_simulate_volume(tmp_path):
    a = sim.cached_pairs(2, 3, SMALL, 1, 1, cache_dir=tmp_path, bscans_per_eye=None)
    np.testing.assert_array_equal(a.ln, sim.simulate_volume(2, 3, SMALL, 1, 1).ln)
    path = next(tmp_path.glob("*.npz"))
    path.write_bytes(path.read_bytes()[:200])  # a truncated cache file is regenerated, not an error
    np.testing.assert_array_equal(sim.cached_pairs(2, 3, SMALL, 1, 1, cache_dir=tmp_path, bscans_per_eye=None).ln,
                                  a.ln)


def test_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_HDCYCLEGAN_CACHE", str(tmp_path))
    assert sim.default_cache_dir() == tmp_path / "sim"


def test_sample_volume_contract():
    v = sim.load_sample_volume()
    n, h, w = v.hn.shape
    assert (h, w) == (496, 512) and n >= 4
    for img in (v.hn, v.ln, v.clean):
        assert img.dtype == np.float32 and img.shape == (n, h, w) and 0 <= img.min() and img.max() <= 1
    assert v.boundaries["ILM"].shape == v.boundaries["RPE"].shape == (n, w)
    assert (v.boundaries["ILM"] < v.boundaries["RPE"]).all()
    assert _psnr(v.ln, v.clean) > _psnr(v.hn, v.clean)
    assert len(v.scale) == 3
