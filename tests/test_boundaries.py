"""Tests for napari_hdcyclegan.boundaries (numpy only, synthetic b-scans and feature maps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_hdcyclegan import boundaries as bd

H, W = 128, 160


def _band(rows: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Anti-aliased indicator of top <= row < bottom per column (pixel row r covers [r, r+1))."""
    r = rows[:, None]
    return np.clip(np.minimum(r + 1, bottom[None]) - np.maximum(r, top[None]), 0, 1)


def synthetic(seed: int = 0, noise: float = 0.03):
    """A b-scan with a bright RNFL band under the ILM and a bright RPE band above the outer
    boundary, a feature map peaking in the middle of both bands, and the true edges."""
    x = np.arange(W)
    ilm = 30 + 6 * np.sin(x / 25.0)
    rpe = 92 + 4 * np.cos(x / 30.0)
    rows = np.arange(H, dtype=float)
    img = 0.05 + 0.25 * _band(rows, ilm, rpe)
    img += 0.55 * _band(rows, ilm, ilm + 8) + 0.7 * _band(rows, rpe - 9, rpe)
    img += np.random.default_rng(seed).normal(0, noise, img.shape)
    r = rows[:, None]
    fmap = np.exp(-0.5 * ((r - (ilm + 4)) / 2.0) ** 2) + np.exp(-0.5 * ((r - (rpe - 4.5)) / 2.0) ** 2)
    return img.astype(np.float32), fmap.astype(np.float32), {"ILM": ilm, "RPE": rpe}


def test_lines_within_one_pixel_and_oriented():
    img, fmap, truth = synthetic()
    found = bd.detect_boundaries(img, fmap)
    assert set(found) == {"ILM", "RPE"}
    assert found["ILM"].shape == (W,) and found["ILM"].dtype == np.float32
    err = bd.boundary_errors(found, truth)
    assert err["ILM"] < 1.0 and err["RPE"] < 1.0, err
    assert err["ILM_coverage"] > 0.95 and err["RPE_coverage"] > 0.95
    ok = np.isfinite(found["ILM"]) & np.isfinite(found["RPE"])
    assert np.all(found["ILM"][ok] < found["RPE"][ok])  # rows from the top: ILM above RPE


def test_refine_moves_from_band_middle_to_edges():
    img, fmap, truth = synthetic()
    raw = bd.detect_boundaries(img, fmap, refine=False)
    ref = bd.detect_boundaries(img, fmap, refine=True)
    # the skeleton runs along the band middles, ~4 px inside each boundary
    assert np.nanmean(raw["ILM"] - truth["ILM"]) > 2.5
    assert np.nanmean(truth["RPE"] - raw["RPE"]) > 2.5
    assert bd.boundary_errors(ref, truth)["ILM"] < 1.0
    assert bd.boundary_errors(ref, truth)["RPE"] < 1.0


def test_missing_band_gives_nan():
    img, fmap, truth = synthetic()
    fmap[:, 100:] = 0.0  # the feature map loses both bands on the right
    found = bd.detect_boundaries(img, fmap)
    assert np.isnan(found["ILM"][110:]).all() and np.isnan(found["RPE"][110:]).all()
    assert np.isfinite(found["ILM"][:90]).mean() > 0.95
    blank = bd.detect_boundaries(img, np.zeros_like(fmap))
    assert np.isnan(blank["ILM"]).all() and np.isnan(blank["RPE"]).all()


def test_shape_mismatch_is_an_error():
    img, fmap, _ = synthetic()
    with pytest.raises(ValueError, match="does not match"):
        bd.detect_boundaries(img, fmap[:-1])


def test_gaps_filled_and_outliers_rejected():
    line = np.linspace(10, 20, 60)
    line[20:24] = np.nan  # short gap: interpolated
    line[40] = 50.0  # outlier: rejected, then interpolated
    line[50:] = np.nan
    out = bd.clean_line(line, window=9, tol=3, max_gap=5)
    assert np.allclose(out[:50], np.linspace(10, 20, 60)[:50])
    assert np.isnan(out[50:]).all()  # trailing gap is not extrapolated
    long_gap = np.linspace(10, 20, 60)
    long_gap[10:30] = np.nan
    assert np.isnan(bd.fill_gaps(long_gap, 5)[10:30]).all()


def test_volume_and_thickness_um():
    vol, maps, truths = zip(*(synthetic(s) for s in range(3)))
    found = bd.detect_volume(np.stack(vol), np.stack(maps))
    assert found["ILM"].shape == (3, W) and found["RPE"].shape == (3, W)
    t = bd.thickness_um(found["ILM"], found["RPE"], 3.87)
    expected = (truths[0]["RPE"] - truths[0]["ILM"]) * 3.87
    assert np.nanmean(np.abs(t[0] - expected)) < 2 * 3.87
    assert np.isnan(bd.thickness_um(np.array([1.0, np.nan]), np.array([np.nan, 5.0]), 2.0)).all()
    assert bd.thickness_um(np.array([1.0]), np.array([5.0]), 2.0)[0] == pytest.approx(8.0)
    with pytest.raises(ValueError):
        bd.thickness_um(np.zeros(3), np.zeros(3), -1)


def test_detect_volume_cancel():
    img, fmap, _ = synthetic()
    with pytest.raises(bd.Cancelled):
        bd.detect_volume(np.stack([img, img]), np.stack([fmap, fmap]), cancel=lambda: True)


def test_csv_header_rows_and_roundtrip(tmp_path):
    b = {"ILM": np.array([[10.0, np.nan, 12.25]]), "RPE": np.array([[50.0, 51.0, np.nan]])}
    table = bd.boundary_table(b, 3.87)
    assert table.dtype.names == bd.CSV_HEADER and len(table) == 3
    path = bd.write_boundaries_csv(tmp_path / "b.csv", b, 3.87)
    lines = path.read_text().splitlines()
    assert lines[0] == "bscan,ascan,ILM,RPE,thickness_um"
    assert lines[1] == "0,0,10,50,154.8"
    assert lines[2] == "0,1,,51,"
    assert lines[3] == "0,2,12.25,,"
    assert np.isnan(bd.boundary_table(b, None)["thickness_um"]).all()  # unknown spacing: empty
    back = bd.read_boundaries_csv(path)
    np.testing.assert_allclose(back["ILM"], b["ILM"])
    np.testing.assert_allclose(back["thickness_um"][0, 0], 154.8)


def test_choose_channel_finds_planted_channel():
    rng = np.random.default_rng(1)
    imgs, goods, truths = zip(*(synthetic(s) for s in range(2)))
    n_noise = 5

    def stage_maps(plant: int | None) -> np.ndarray:
        # channels that respond to other, blob-like regions (a channel proportional to the
        # image itself would track the bright bands too, and legitimately compete)
        maps = ndi.gaussian_filter(rng.random((2, n_noise, H, W)), (0, 0, 4, 4)).astype(np.float32)
        if plant is not None:
            maps[:, plant] = np.stack(goods)
        return maps

    feature_maps = {"init": stage_maps(None), "down1": stage_maps(3)}
    refs = [{k: t[k] for k in ("ILM", "RPE")} for t in truths]
    choice = bd.choose_channel(feature_maps, np.stack(imgs), refs)
    assert (choice["stage"], choice["channel"]) == ("down1", 3)
    assert choice["score"] < 1.5 and "reference" in choice["how"]
    free = bd.choose_channel(feature_maps, np.stack(imgs))
    assert (free["stage"], free["channel"]) == ("down1", 3)
    assert "label-free" in free["how"]


def test_boundary_channel_roundtrip(tmp_path):
    (tmp_path / "config.json").write_text('{"format": "hdcyclegan-model", "boundary_channel": null}')
    bd.write_boundary_channel(tmp_path, {"stage": "down1", "channel": 3, "how": "test"})
    import json
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert bd.boundary_channel(cfg) == ("down1", 3)
    assert bd.boundary_channel({"boundary_channel": None}) is None


# ------------------------------------------------------------------------------------------------
# Stage two: optimal paths, fold-over, plausibility, priors


def test_optimal_path_follows_cheapest_line_within_step_limit():
    rng = np.random.default_rng(0)
    h, w = 60, 80
    truth = np.clip(np.rint(30 + 10 * np.sin(np.arange(w) / 9.0)), 0, h - 1).astype(int)
    cost = rng.random((h, w)).astype(np.float32)
    cost[truth, np.arange(w)] = -5.0
    path = bd.optimal_path(cost, max_step=2, penalty=0.01)
    np.testing.assert_array_equal(path, truth)
    # a one-column spike far off the line is not worth the step limit
    cost[5, 40] = -100.0
    assert abs(bd.optimal_path(cost, 2, 0.01)[40] - truth[40]) <= 2


def test_refined_paths_ignore_a_misleading_feature_map():
    img, fmap, truth = synthetic()
    shifted = np.roll(fmap, 6, axis=0)  # a model whose channel sits 6 rows too deep
    found = bd.detect_boundaries(img, shifted)
    err = bd.boundary_errors(found, truth)
    assert err["ILM"] < 1.0 and err["RPE"] < 1.0, err


def test_hyaloid_above_the_retina_is_not_the_ilm():
    img, fmap, truth = synthetic(noise=0.02)
    x = np.arange(W)
    hyaloid = np.rint(truth["ILM"] - 12).astype(int)
    img[hyaloid, x] += 0.5  # a thin bright membrane in the vitreous
    found = bd.detect_boundaries(img, fmap)
    assert bd.boundary_errors(found, truth)["ILM"] < 1.0


def test_fold_over_top_edge_is_nan_not_wrong():
    w, h = 200, 300
    ilm = np.full(w, 80.0)
    ilm[60:75] = np.linspace(2, 80, 15)  # the retina rises steeply to the top ...
    ilm[:60] = 2.0  # ... and what lies beyond is a mirrored copy
    folded = bd.fold_mask(ilm, 0, h)
    assert folded[:60].all() and not folded[95:].any()
    gentle = np.full(w, 20.0)
    gentle[:80] = np.linspace(2, 20, 80)  # a retina merely close to the top edge
    assert not bd.fold_mask(gentle, 0, h).any()


def test_fold_decision_does_not_hinge_on_a_one_row_shift():
    # valid.vol: the folded ILM runs at row 6 of 496; whether the export's first row counts as blank
    # (first = 0 or 1, decided on the denoised b-scan) must not flip 200 A-scans
    w, h = 768, 496
    ilm = np.full(w, 300.0)
    ilm[180:215] = np.linspace(6, 300, 35)
    ilm[:180] = 6.0
    masks = [bd.fold_mask(ilm, first, h, bd.PathParams().fold_margin) for first in (0, 1)]
    assert masks[0][:180].all() and masks[1][:180].all()
    np.testing.assert_array_equal(masks[0], masks[1])


def test_doubtful_flags_implausible_thickness_and_jumps():
    h, w = 100, 50
    grad = np.zeros((h, w), np.float32)
    ilm = np.full(w, 30.0)
    rpe = np.full(w, 60.0)
    grad[29, :], grad[59, :] = 1.0, -1.0
    assert not bd.doubtful_ascans(grad, ilm, rpe).any()
    rpe[10] = 31.0  # 1 px thick and a jump
    bad = bd.doubtful_ascans(grad, ilm, rpe)
    assert bad[9:12].all() and bad.sum() <= 4
    assert "doubtful" in bd.summary({"ILM": ilm, "RPE": rpe, "doubtful": bad})


def test_volume_uses_previous_bscan_and_reports_doubtful():
    vol, maps, truths = zip(*(synthetic(s, noise=0.05) for s in range(3)))
    found = bd.detect_volume(np.stack(vol), np.stack(maps))
    assert found["doubtful"].shape == (3, W) and found["doubtful"].dtype == bool
    for i, t in enumerate(truths):
        err = bd.boundary_errors({k: found[k][i] for k in ("ILM", "RPE")}, t)
        assert err["ILM"] < 1.0 and err["RPE"] < 1.0


def test_mean_difference_to_vendor_lines():
    diff, n = bd.mean_difference(np.array([1.0, 2.0, np.nan]), np.array([2.0, 2.5, 3.0]))
    assert n == 2 and diff == pytest.approx(0.75)


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TIAN = SHARED / "layers" / "tian2015_octlayers"


@pytest.mark.skipif(not TIAN.is_dir(), reason="shared reference data (Tian et al. 2015) not present")
@pytest.mark.parametrize("subject", [1, 4])
def test_real_spectralis_scans_against_manual_labels(subject):
    imageio = pytest.importorskip("imageio.v3")
    labels = [np.loadtxt(TIAN / f"Subject{subject}_{k}.txt", delimiter=",") for k in (1, 8)]
    for n in (1, 5):
        img = imageio.imread(TIAN / f"Subject{subject}_{n:02d}.png")
        img = img[..., 0] if img.ndim == 3 else img
        # a stand-in boundary channel: the blurred b-scan (the lines come from the gradients)
        found = bd.detect_boundaries(img, ndi.gaussian_filter(img.astype(np.float32), 3))
        err = bd.boundary_errors(found, {"ILM": labels[0][:, n - 1], "RPE": labels[1][:, n - 1]})
        assert err["ILM"] < 1.0 and err["RPE"] < 1.5 and err["ILM_coverage"] > 0.99, err


class FakeDenoiser:
    """Just what the boundary generators use of a Denoiser: untrained, channel 0 of stage "init"
    is the planted feature map of each synthetic b-scan, channel 1 is noise."""

    trained = False

    def __init__(self, boundary_channel=None):
        self.config = type("Config", (), {"boundary_channel": boundary_channel})()
        self.maps: dict[bytes, np.ndarray] = {}
        self.calls = 0

    def stage_channels(self):
        return {"init": 2}

    def feature_maps(self, raw, stage, channels=None):
        self.calls += 1
        raw = np.asarray(raw, np.float32)
        planted = self.maps.get(raw.tobytes(), ndi.gaussian_filter(raw, 2.0))
        maps = np.stack([planted, np.random.default_rng(0).random(raw.shape, np.float32)])
        return maps if channels is None else maps[list(channels)]

    def denoise(self, raw):
        return raw


def test_iter_boundaries_steps_match_the_callback_form():
    vol, maps, _ = zip(*(synthetic(s) for s in range(3)))
    den = FakeDenoiser({"stage": "init", "channel": 0, "how": "test"})
    den.maps = {v.tobytes(): m for v, m in zip(vol, maps)}
    steps = bd.iter_boundaries(np.stack(vol), den)
    seen = []
    try:
        while True:
            seen.append(next(steps))
    except StopIteration as stop:
        result = stop.value
    assert seen == [(i, 3, f"b-scan {i}/3") for i in range(4)]
    assert (result["stage"], result["channel"], result["how"], result["refine"]) == ("init", 0, "test", True)
    progress: list[tuple[int, int]] = []
    found = bd.model_boundaries(np.stack(vol), den, progress=lambda d, t: progress.append((d, t)))
    assert progress == [(i, 3) for i in range(4)]
    for name in ("ILM", "RPE", "doubtful"):
        np.testing.assert_array_equal(found[name], result["boundaries"][name])
    np.testing.assert_array_equal(found["ILM"], bd.detect_volume(np.stack(vol), np.stack(maps))["ILM"])
    # stopping the generator stops the work: no feature map after the b-scan in progress
    den.calls = 0
    steps = bd.iter_boundaries(np.stack(vol), den)
    next(steps), next(steps)
    steps.close()
    assert den.calls == 1


def test_iter_calibrate_boundary_channel_steps_and_cancel():
    den = FakeDenoiser()
    steps = list(bd.iter_calibrate_boundary_channel(den, n=1, shape=(128, 128)))
    total = 1 * (1 + 1) + 1
    assert steps == [(0, total), (1, total), (2, total), (total, total)]
    assert den.config.boundary_channel["stage"] == "init"
    den = FakeDenoiser()
    with pytest.raises(bd.Cancelled):
        bd.calibrate_boundary_channel(den, n=1, shape=(128, 128), cancel=lambda: True)
    assert den.calls == 0 and den.config.boundary_channel is None
    # a model without a recorded channel is calibrated inside iter_boundaries
    img, _, _ = synthetic()
    den = FakeDenoiser()
    result = bd.model_boundaries(img, den, calibration={"n": 1, "shape": (128, 128)})
    assert result["ILM"].shape == (1, W) and "calibrate" in den.config.boundary_channel["how"]


def layered(seed: int = 0, noise: float = 0.03, h: int = 496, w: int = 200):
    """A b-scan with the seven Tian layers (intensities like a Spectralis macula), a feature map
    on ILM and RPE, and the true rows of all eight boundaries (top of each layer below); 496 rows
    like a Spectralis b-scan (the inner search bands are fractions of the height)."""
    x = np.arange(w)
    ilm = 150 + 8 * np.sin(x / 40.0)
    thick = {"RNFL": 10, "IPL": 15, "INL": 8, "OPL": 7, "PR1": 24, "PR2": 6, "RPE": 10}
    truth = {"ILM": ilm}
    top = ilm
    for name, t in thick.items():
        top = top + t + (2 * np.cos(x / 30.0) if name == "PR1" else 0)
        truth[name] = top
    rows = np.arange(h, dtype=float)
    bands = [("ILM", "RNFL", 0.85), ("RNFL", "IPL", 0.45), ("IPL", "INL", 0.2), ("INL", "OPL", 0.45),
             ("OPL", "PR1", 0.12), ("PR2", "RPE", 0.9)]
    img = 0.04 + sum(v * _band(rows, truth[a], truth[b]) for a, b, v in bands)
    img += 0.85 * _band(rows, truth["PR1"], truth["PR1"] + 2) + 0.35 * _band(rows, truth["PR1"] + 2, truth["PR2"])
    img += 0.25 * _band(rows, truth["RPE"], truth["RPE"] + 40)
    img += np.random.default_rng(seed).normal(0, noise, img.shape)
    r = rows[:, None]
    fmap = np.exp(-0.5 * ((r - (ilm + 4)) / 2.0) ** 2) + np.exp(-0.5 * ((r - (truth["RPE"] - 5)) / 2.0) ** 2)
    return img.astype(np.float32), fmap.astype(np.float32), truth


def test_inner_boundaries_within_two_pixels_and_ordered():
    img, fmap, truth = layered()
    plain = bd.detect_boundaries(img, fmap)
    found = bd.detect_boundaries(img, fmap, inner=True)
    assert set(found) == {"ILM", "RPE", *bd.INNER_NAMES}
    for name in ("ILM", "RPE"):  # the inner lines change nothing about ILM and BM
        np.testing.assert_array_equal(found[name], plain[name])
    stack = np.stack([found[k] for k in bd.LAYER_BOUNDARIES])
    ok = np.isfinite(stack).all(axis=0)
    assert ok.mean() > 0.95
    assert np.all(np.diff(stack[:, ok], axis=0) >= 0)  # top to bottom, never crossing
    for name in bd.LAYER_BOUNDARIES:
        err = float(np.mean(np.abs(found[name][ok] - truth[name][ok])))
        assert err < 1.5, (name, err)


def test_inner_layers_need_refine_and_are_nan_without_ilm():
    img, fmap, _ = layered()
    with pytest.raises(ValueError):
        bd.detect_boundaries(img, fmap, refine=False, inner=True)
    nan = np.full(img.shape[1], np.nan)
    lines = bd.inner_boundaries(img, nan, nan)
    assert set(lines) == set(bd.INNER_NAMES) and all(np.isnan(v).all() for v in lines.values())


def test_inner_boundaries_reuse_the_rpe_band_smoothing(monkeypatch):
    img, fmap, _ = layered()
    unit = bd.prepare_bscan(img)["unit"]
    lines = bd.refine_paths(unit)
    np.testing.assert_array_equal(lines["band_smooth"],
                                  ndi.gaussian_filter(unit.astype(np.float32), bd.PathParams().band_sigma))
    own = bd.inner_boundaries(unit, lines["ILM"], lines["RPE"])
    given = bd.inner_boundaries(unit, lines["ILM"], lines["RPE"], onl_smooth=lines["band_smooth"])
    for name in bd.INNER_NAMES:
        np.testing.assert_array_equal(given[name], own[name])
    # detect_boundaries hands stage two's smoothing on only when the sigmas agree
    handed: list = []

    def spy(*args, onl_smooth=None, **kwargs):
        handed.append(onl_smooth is not None)
        return bd.inner_boundaries(*args, onl_smooth=onl_smooth, **kwargs)

    monkeypatch.setattr("napari_hdcyclegan.boundaries.detect.inner_boundaries", spy)
    other = bd.LayerParams(onl_sigma=(2.0, 4.0))
    found = bd.detect_boundaries(img, fmap, inner=True, layer_params=other)
    direct = bd.inner_boundaries(unit, found["ILM"], found["RPE"], other)
    for name in bd.INNER_NAMES:
        np.testing.assert_array_equal(found[name], direct[name].astype(np.float32))
    bd.detect_boundaries(img, fmap, inner=True)
    assert handed == [False, True]


def test_volume_and_csv_with_inner_layers(tmp_path):
    img, fmap, _ = layered()
    vol = bd.detect_volume(np.stack([img, img]), np.stack([fmap, fmap]), inner=True)
    assert vol["PR1"].shape == (2, img.shape[1]) and vol["doubtful"].dtype == bool
    for spacing, unit in ((3.9, "um"), (None, "px")):
        path = bd.write_boundaries_csv(tmp_path / f"b_{unit}.csv", vol, spacing)
        header = path.read_text().splitlines()[0].split(",")
        assert header == ["bscan", "ascan", *bd.LAYER_BOUNDARIES, "thickness_um",
                          *(f"{k}_{unit}" for k in bd.LAYER_NAMES)]
        back = bd.read_boundaries_csv(path)
        np.testing.assert_allclose(back["PR1"], vol["PR1"], atol=1e-3)
        scale = 1.0 if spacing is None else spacing
        np.testing.assert_allclose(back[f"ONL+IS_{unit}"], (vol["PR1"] - vol["OPL"]) * scale, atol=2e-3)
    plain = bd.write_boundaries_csv(tmp_path / "plain.csv", {k: vol[k] for k in bd.BOUNDARY_NAMES}, None)
    assert bd.read_boundaries_csv(plain).keys() == {"ILM", "RPE", "thickness_um"}


@pytest.mark.skipif(not TIAN.is_dir(), reason="shared reference data (Tian et al. 2015) not present")
def test_inner_boundaries_on_real_spectralis_scans():
    imageio = pytest.importorskip("imageio.v3")
    labels = {k: np.loadtxt(TIAN / f"Subject4_{v}.txt", delimiter=",") for k, v in bd.TIAN_LABELS.items()}
    img = imageio.imread(TIAN / "Subject4_05.png")
    img = img[..., 0] if img.ndim == 3 else img
    found = bd.detect_boundaries(img, ndi.gaussian_filter(img.astype(np.float32), 3), inner=True)
    for name in bd.INNER_NAMES:
        err = float(np.nanmean(np.abs(found[name] - labels[name][:, 4])))
        assert err < (3.5 if name == "PR2" else 2.5), (name, err)


@pytest.mark.parametrize("recorded, message", [
    ({"stage": "init", "channel": 9999}, "stage 'init' has 2 channels"),
    ({"stage": "res9", "channel": 0}, "stages are init"),
    ({"stage": "init", "channel": "first"}, "needs a stage name and an integer channel"),
])
def test_a_recorded_channel_the_generator_lacks_is_a_checkpoint_error(recorded, message):
    from napari_hdcyclegan.model.checkpoint import CheckpointError

    img, _, _ = synthetic()
    with pytest.raises(CheckpointError, match=message):
        bd.model_boundaries(img, FakeDenoiser(recorded))


@pytest.mark.parametrize("blank", [0.0, 0.4, np.nan])
def test_a_blank_bscan_gets_no_lines_and_leaves_its_neighbours_alone(blank):
    (a, ma, _), (b, mb, _) = synthetic(0)[:3], synthetic(1)[:3]
    den = FakeDenoiser({"stage": "init", "channel": 0, "how": "test"})
    den.maps = {a.tobytes(): ma, b.tobytes(): mb, np.full_like(a, blank).tobytes(): ma}  # a map that responds
    den.trained = True  # lines on the denoised b-scan, which a real model never returns exactly flat
    den.denoise = lambda raw: raw + np.random.default_rng(1).normal(0, 0.01, raw.shape).astype(np.float32)
    alone = bd.model_boundaries(np.stack([a, b]), den)
    found = bd.model_boundaries(np.stack([a, np.full_like(a, blank), b]), den)
    assert np.isnan(found["ILM"][1]).all() and np.isnan(found["RPE"][1]).all() and not found["doubtful"][1].any()
    for name in ("ILM", "RPE", "doubtful"):  # the b-scan after the blank one keeps the prior before it
        np.testing.assert_array_equal(found[name][[0, 2]], alone[name])
    assert "both lines on 67% of A-scans" in bd.summary(found)


def test_an_rpe_above_the_ilm_is_not_a_line(monkeypatch):
    from napari_hdcyclegan.boundaries import detect

    img, fmap, _ = synthetic()
    real = detect.refine_paths

    def swapped(*args, **kwargs):
        lines = dict(real(*args, **kwargs))
        lines["ILM"], lines["RPE"] = lines["RPE"].copy(), lines["ILM"].copy()  # inverted where it matters
        lines["RPE"][: W // 2] = lines["ILM"][: W // 2] + 60  # the left half stays a plausible retina
        return lines

    monkeypatch.setattr(detect, "refine_paths", swapped)
    found = bd.detect_boundaries(img, fmap)
    assert np.isfinite(found["ILM"][: W // 2]).all() and np.isnan(found["ILM"][W // 2:]).all()
    assert np.isnan(found["RPE"][W // 2:]).all()


def test_every_b_scan_is_mapped_by_the_volumes_levels():
    """As a Denoise run of the volume: a dim b-scan of 12-bit data is not mapped by its own 10 bits."""
    pytest.importorskip("torch")
    from napari_hdcyclegan.denoiser import Denoiser
    from napari_hdcyclegan.model import Generator, ModelConfig

    class Spy(Denoiser):
        seen: list = []

        def feature_maps(self, bscan, stage, channels=None, levels=None):
            self.seen.append(("maps", levels))
            return super().feature_maps(bscan, stage, channels, levels)

        def denoise(self, data, *args, levels=None, **kwargs):
            self.seen.append(("denoise", levels))
            return super().denoise(data, *args, levels=levels, **kwargs)

    config = ModelConfig(generator_width=4, name="tiny", trained=True, normalisation={"method": "dtype"})
    spy = Spy(Generator(4), config, "cpu")
    raw = np.stack([synthetic(s)[0] for s in range(2)]).astype(np.float64)
    vol = ((raw - raw.min()) / (raw.max() - raw.min()) * 4000).astype(np.uint16)  # 12-bit values
    vol[0] //= 4
    list(bd.iter_model_boundaries(vol, spy, "init", 0))
    assert spy.seen and all(levels == (0.0, 4095.0) for _, levels in spy.seen)
    spy.seen.clear()
    filled = np.concatenate([vol, np.full((1, *vol.shape[1:]), 65535, np.uint16)])  # a no-data filler b-scan
    lines = [line for _, line in bd.iter_model_boundaries(filled, spy, "init", 0)]
    assert np.isnan(lines[-1]["ILM"]).all()  # skipped, as before
    assert spy.seen and all(levels == (0.0, 4095.0) for _, levels in spy.seen)  # it does not set the others
