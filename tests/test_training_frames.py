"""training.frames: registered Duke frame stacks, k-frame averages, frame Noise2Noise crops."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter
from skimage import io

from training import evaluate
from training.config import FitConfig, parse_args
from training.data import DataError, align_reference, duke_pairs
from training.frames import (
    FrameSampler,
    MixedSampler,
    correlated_axially,
    correlation_map,
    duke_frame_stacks,
    frame_average,
    frame_average_pairs,
    frame_mean_pairs,
    register_frames,
    registered_duke_pairs,
    synthetic_mean_pairs,
)
from training.sources import load_training_data

SHIFTS = [(0, 0), (1, 0), (-1, 2), (0, -1), (2, 1)]  # (row, column) of each frame against test.tif


def _scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return 128 + (gaussian_filter(rng.random(shape), 3) - 0.5) * 2500  # texture spanning ~0..255


def _frames(rng: np.random.Generator, shape: tuple[int, int], noise: float = 20.0) -> tuple[list, np.ndarray]:
    scene = _scene(rng, (shape[0] + 8, shape[1] + 8))
    frames = []
    for r, c in SHIFTS:  # frame k sees the scene moved by (r, c): registering moves it back
        view = scene[4 + r:4 + r + shape[0], 4 + c:4 + c + shape[1]]
        frames.append(np.clip(view + rng.normal(0, noise, shape), 0, 255).astype(np.uint8))
    return frames, np.clip(scene[4:-4, 4:-4], 0, 255).astype(np.uint8)


@pytest.fixture()
def duke_tree(tmp_path: Path) -> Path:
    """Duke folders with five shifted noisy frames per dt1 subject and single frames for the others."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data" / "paired"
    for i in range(1, 10):
        folder = root / "duke_fang2013_dt1" / f"S0{i}"
        folder.mkdir(parents=True)
        frames, average = _frames(rng, (80, 144))
        for name, im in zip(["test", "1", "2", "3", "4"], frames):
            tifffile.imwrite(folder / f"{name}.tif", im)
        tifffile.imwrite(folder / "average.tif", average)
    for name in ("T02", "T03", "T04", "T06", "T07", "T09"):
        folder = root / "duke_fang2013_train" / name
        folder.mkdir(parents=True)
        frames, average = _frames(rng, (80, 144))
        tifffile.imwrite(folder / "raw.tif", frames[0])
        tifffile.imwrite(folder / "average.tif", average)
    return root


def test_register_frames_undoes_whole_pixel_shifts() -> None:
    frames, _ = _frames(np.random.default_rng(1), (96, 160), noise=0.0)
    stack = register_frames(frames)
    assert stack.shape == (5, 96 - 3, 160 - 3)  # rows cut: shifts -1..2; columns: -1..2
    for f in stack[1:]:
        assert np.array_equal(f, stack[0])


def test_register_frames_refuses_frames_of_different_scenes() -> None:
    rng = np.random.default_rng(2)
    a, b = _scene(rng, (96, 160)), _scene(rng, (96, 160))
    with pytest.raises(DataError, match="lowest correlation"):
        register_frames([a, b])


def test_register_frames_refuses_shifts_at_the_search_limit() -> None:
    scene = _scene(np.random.default_rng(3), (120, 200))
    with pytest.raises(DataError, match="do not register within"):
        register_frames([scene[12:108], scene[:96]], limit=(10, 24))  # 12 rows apart
    assert register_frames([scene[8:104], scene[:96]], limit=(10, 24)).shape == (2, 88, 200)


def test_correlation_map_scores_every_shift_like_a_direct_computation() -> None:
    rng = np.random.default_rng(4)
    a = gaussian_filter(rng.random((50, 70)), 2)
    b = np.roll(a, (2, -3), axis=(0, 1)) + 0.01 * rng.random(a.shape)
    m = correlation_map(a, b, (4, 5))
    core = a[5:45, 6:64]
    for dr, dc in ((0, 0), (-2, 3), (4, -5), (-4, 5)):
        view = b[5 - dr:45 - dr, 6 - dc:64 - dc]
        assert m[4 + dr, 5 + dc] == pytest.approx(np.corrcoef(core.ravel(), view.ravel())[0, 1], abs=1e-9)
    assert np.unravel_index(np.argmax(m), m.shape) == (4 - 2, 5 + 3)
    with pytest.raises(DataError, match="different shapes"):
        correlation_map(a, b[:-1], (4, 5))


def test_duke_frame_stacks_take_the_dt1_subjects_of_a_split(duke_tree: Path) -> None:
    stacks = duke_frame_stacks("train", duke_tree)
    assert [s for s, _, _ in stacks] == ["S01", "S02", "S03", "S04"]  # the T.. pairs have one frame
    for _, frames, average in stacks:
        assert frames.dtype == np.uint8 and frames.shape[0] == 5 and average.shape == frames.shape[1:]
    assert [s for s, _, _ in duke_frame_stacks("val", duke_tree)] == ["S05"]
    (duke_tree / "duke_fang2013_dt1" / "S06" / "3.tif").unlink()
    with pytest.raises(DataError, match="missing 3.tif"):
        duke_frame_stacks("test", duke_tree)


def test_frame_average_rounds_to_the_frames_type() -> None:
    frames = np.array([[[0, 255]], [[1, 255]], [[2, 0]]], dtype=np.uint8)
    assert frame_average(frames, 1).tolist() == [[0, 255]]
    out = frame_average(frames, 2)
    assert out.dtype == np.uint8 and out.tolist() == [[0, 255]]  # 0.5 rounds to even, 255 stays
    assert frame_average(frames, 3).tolist() == [[1, 170]]
    with pytest.raises(DataError, match="cannot average 4 of 3"):
        frame_average(frames, 4)


def test_frame_average_pairs_get_less_noisy_with_more_frames(duke_tree: Path) -> None:
    errors = []
    for k in (1, 2, 5):
        pairs = frame_average_pairs("val", k, duke_tree)
        assert [n for n, _, _ in pairs] == [f"S05/mean{k}"]
        _, x, ref = pairs[0]
        errors.append(float(np.std(x.astype(float) - ref)))
    assert errors[0] > errors[1] > errors[2]


def test_frame_sampler_splits_the_frames_into_disjoint_input_and_target() -> None:
    # frame i is the constant 2**i: each crop's input and target means reveal which frames they used
    stack = np.stack([np.full((40, 50), 2.0**i, np.float32) for i in range(5)])
    sampler = FrameSampler([stack], crop=16)
    x, y = sampler.batch(np.random.default_rng(0), 64)
    assert x.shape == y.shape == (64, 1, 16, 16)
    ks = set()
    for a, b in zip(x[:, 0, 0, 0], y[:, 0, 0, 0]):
        k = next(k for k in range(1, 5) if np.isclose(a * k + b * (5 - k), 31.0)
                 and float(a * k).is_integer() and float(b * (5 - k)).is_integer())
        used_in, used_out = int(round(a * k)), int(round(b * (5 - k)))
        assert used_in & used_out == 0 and used_in | used_out == 31  # disjoint, every frame used once
        ks.add(k)
    assert ks == {1, 2, 3, 4}


def test_frame_sampler_flips_input_and_target_together() -> None:
    ramp = np.tile(np.arange(30, dtype=np.float32), (20, 1))
    sampler = FrameSampler([np.stack([ramp] * 3)], crop=20)
    x, y = sampler.batch(np.random.default_rng(3), 32)
    np.testing.assert_array_equal(x, y)
    assert {bool(p[0, 0, 0] > p[0, 0, -1]) for p in x} == {True, False}


def test_frame_sampler_refuses_stacks_it_cannot_split() -> None:
    with pytest.raises(DataError, match="2\\+ frames"):
        FrameSampler([np.zeros((1, 40, 40), np.float32)], crop=16)
    with pytest.raises(DataError, match="no frame stacks"):
        FrameSampler([], crop=16)


def test_mixed_sampler_draws_from_the_second_with_probability_p() -> None:
    zeros = FrameSampler([np.zeros((2, 20, 20), np.float32)], crop=8)
    ones = FrameSampler([np.ones((2, 20, 20), np.float32)], crop=8)
    rng = np.random.default_rng(0)
    assert MixedSampler(zeros, ones, 0.0).batch(rng, 8)[0].max() == 0
    assert MixedSampler(zeros, ones, 1.0).batch(rng, 8)[0].min() == 1
    share = MixedSampler(zeros, ones, 0.25).batch(rng, 400)[0][:, 0, 0, 0].mean()
    assert 0.18 < share < 0.32


def _tian_scans(duke_tree: Path, seed: int) -> None:
    """One random b-scan per Tian subject beside the Duke fixture (``--data real`` needs them)."""
    rng = np.random.default_rng(seed)
    tian = duke_tree.parent / "layers" / "tian2015_octlayers"
    tian.mkdir(parents=True)
    for s in range(1, 6):
        io.imsave(tian / f"Subject{s}_01.png", rng.integers(0, 255, (48, 96), dtype=np.uint8), check_contrast=False)


def _count_crops(monkeypatch: pytest.MonkeyPatch, kind: Callable[[FrameSampler], str]) -> Counter[str]:
    """Crops drawn per kind of Noise2Noise pair from now on: ``full`` (column halves) or ``kind(sampler)``."""
    from training.real import SplitSampler

    drawn: Counter[str] = Counter()
    full_batch, pair_batch = SplitSampler.full_batch, FrameSampler.batch

    def spy_full(self: SplitSampler, r: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
        drawn["full"] += n
        return full_batch(self, r, n)

    def spy_pairs(self: FrameSampler, r: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        drawn[kind(self)] += n
        return pair_batch(self, r, n)

    monkeypatch.setattr(SplitSampler, "full_batch", spy_full)
    monkeypatch.setattr(FrameSampler, "batch", spy_pairs)
    return drawn


def test_real_run_mixes_frame_pairs_and_validates_on_frame_averages(duke_tree: Path, tmp_path: Path) -> None:
    _tian_scans(duke_tree, 4)
    cfg = FitConfig(data="real", shared_data=str(duke_tree.parent), real_duke=False, crop=32, n2n_weight=1.0,
                    n2n_duke_frames=0.5, ln_min_split_psnr=0.0, out=str(tmp_path / "run"))
    data = load_training_data(cfg)
    assert isinstance(data.split, MixedSampler) and data.split.p == 0.5
    assert [v.name for v in data.val] == ["S05/mean2", "S05/mean3"]
    assert data.description["n2n_duke_frames"]["share"] == 0.5
    x, y = data.split.batch(np.random.default_rng(0), 4)
    assert x.shape == y.shape == (4, 1, 32, 32) and 0 <= x.min() and x.max() <= 1


def test_consistency_term_takes_frame_pairs_beside_the_column_halves(duke_tree: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from training import fit

    _tian_scans(duke_tree, 5)
    cfg = FitConfig(data="real", shared_data=str(duke_tree.parent), real_duke=False, crop=16, batch=8, width=4,
                    d_width=4, n2n_weight=1.0, n2n_consistency=2.0, n2n_duke_frames=0.5, pretrain_steps=2,
                    steps=0, ln_min_split_psnr=0.0, val_bm3d=False, threads=1, out=str(tmp_path / "run"))
    data = load_training_data(cfg)
    drawn = _count_crops(monkeypatch, lambda sampler: "frames")
    trainer = fit.Trainer(cfg, data)
    rows = [trainer.step() for _ in range(6)]
    assert all(np.isfinite(r["loss_n2n"]) and r["loss_n2n"] > 0 for r in rows)
    assert drawn["full"] and drawn["frames"]  # both kinds of pair trained
    assert sum(drawn.values()) == 6 * cfg.batch  # every crop drawn once


def test_simulated_pairs_join_the_frame_pairs_and_column_halves(duke_tree: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from training import fit

    _tian_scans(duke_tree, 6)
    cfg = FitConfig(data="real", shared_data=str(duke_tree.parent), real_duke=False, crop=16, batch=8, width=4,
                    d_width=4, n2n_weight=1.0, n2n_consistency=2.0, n2n_duke_frames=0.25, n2n_sim=0.5, sim_n=2,
                    sim_shape=(48, 64), pretrain_steps=2, steps=0, ln_min_split_psnr=0.0, val_bm3d=False,
                    threads=1, out=str(tmp_path / "run"))
    data = load_training_data(cfg)
    assert isinstance(data.split, MixedSampler) and data.split.p == 0.75  # frames + sim against the halves
    inner = data.split.second
    assert isinstance(inner, MixedSampler) and inner.p == pytest.approx(2 / 3)  # sim's part of the pairs
    assert isinstance(inner.second, FrameSampler) and [s.shape for s in inner.second.stacks] == [(4, 48, 64)] * 2
    assert data.description["n2n_sim"]["share"] == 0.5 and data.description["n2n_sim"]["scenes"] == 2
    assert data.description["n2n_sim"]["folds"] is True
    drawn = _count_crops(monkeypatch, lambda sampler: "sim" if sampler is inner.second else "frames")
    trainer = fit.Trainer(cfg, data)
    rows = [trainer.step() for _ in range(6)]
    assert all(np.isfinite(r["loss_n2n"]) and r["loss_n2n"] > 0 for r in rows)
    assert len(drawn) == 3 and sum(drawn.values()) == 6 * cfg.batch  # all three kinds, each crop once
    drawn.update(frames=0, sim=0)
    inner.batch(np.random.default_rng(1), 600)
    assert 0.6 < drawn["sim"] / 600 < 0.73  # shares 0.5 and 0.25 of all crops: two thirds of the pairs


@pytest.mark.parametrize("argv, message", [
    (["--n2n-sim", "0.5"], "need --data real"),
    (["--data", "real", "--n2n-sim", "0.5", "--n2n-duke-frames", "0.75", "--n2n-weight", "1"], "at most 1"),
    (["--data", "real", "--n2n-sim", "0.5"], "need --n2n-weight"),
    (["--data", "real", "--n2n-weight", "1", "--n2n-sim-folds", "false"], "n2n_sim_folds false needs --n2n-sim"),
    (["--n2n-duke-frames", "0.5"], "need --data real"),
    (["--data", "real", "--n2n-duke-frames", "1.5"], "must be in \\[0, 1\\]"),
    (["--data", "real", "--n2n-duke-frames", "0.5"], "need --n2n-weight"),
    (["--data", "real", "--real-duke", "false", "--duke-register", "true"], "duke_register needs"),
])
def test_n2n_duke_frames_flag_is_checked(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)


def test_evaluate_scores_frame_averages(duke_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ev"
    assert evaluate.main(["--data", "duke", "--split", "val", "--frames", "3", "--duke-root", str(duke_tree),
                          "--methods", "median", "--out", str(out), "--examples", "1"]) == 0
    assert "3-frame averages" in (out / "table.md").read_text()
    assert (out / "scores.csv").read_text().count("S05/mean3") == 2  # raw and median rows
    assert evaluate.main(["--data", "sim", "--frames", "2"]) == 2
    assert "needs --data duke" in capsys.readouterr().err


def test_registered_duke_pairs_put_each_frame_on_its_average(duke_tree: Path) -> None:
    pairs = registered_duke_pairs("train", duke_tree)
    plain = duke_pairs("train", duke_tree, extra_frames=True)
    assert [n for n, _, _ in pairs] == [n for n, _, _ in plain]
    errors = {}
    for (name, noisy, average), (_, raw, raw_average) in zip(pairs, plain):
        assert noisy.shape == average.shape
        if name.startswith("T"):  # single-frame pairs stay as they are
            assert np.array_equal(noisy, raw) and np.array_equal(average, raw_average)
        errors[name] = float(np.abs(noisy.astype(float) - average).mean())
    # frame 2 of the fixture is 1 row and 2 columns off: registered, it is as close as test.tif is
    assert errors["S01/2"] < 1.2 * errors["S01/test"]
    off = np.abs(plain[2][1].astype(float) - plain[2][2]).mean()
    assert off > 1.5 * errors["S01/2"]


def test_duke_register_flag_is_checked_and_wired(duke_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="duke_register needs"):
        parse_args(["--duke-register", "true"])
    with pytest.raises(SystemExit, match="duke_register needs"):
        parse_args(["--data", "duke", "--duke-register", "true", "--duke-extra-frames", "false"])
    cfg = FitConfig(data="duke", duke_root=str(duke_tree), duke_register=True, crop=32, out=str(tmp_path / "r"))
    data = load_training_data(cfg)
    assert data.description["frames_registered"] is True
    assert data.sampler.targets is not None and len(data.sampler.targets) == 4 * 5 + 5


def test_frame_mean_pairs_add_few_frame_inputs_per_subject(duke_tree: Path) -> None:
    pairs = frame_mean_pairs("train", duke_tree)
    assert len(pairs) == 4 * 7  # S01-S04: two means for k = 2, 3, 4, one for k = 5
    assert [n for n, _, _ in pairs[:7]] == ["S01/mean2_01", "S01/mean2_34", "S01/mean3_012", "S01/mean3_234",
                                            "S01/mean4_0123", "S01/mean4_1234", "S01/mean5_01234"]
    stack = duke_frame_stacks("train", duke_tree)[0][1]
    np.testing.assert_array_equal(pairs[1][1], frame_average(stack[3:], 2))
    every = frame_mean_pairs("train", duke_tree, every=True)
    assert len(every) == 4 * 26 and len({n for n, _, _ in every}) == 4 * 26
    np.testing.assert_array_equal(every[3][1], frame_average(stack[[0, 4]], 2))  # S01/mean2_04


def test_duke_frame_means_flag_adds_or_replaces_inputs_and_validation(duke_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="duke_frame_means needs"):
        parse_args(["--data", "duke", "--duke-frame-means", "add"])
    with pytest.raises(SystemExit, match="none, add or only"):
        parse_args(["--data", "duke", "--duke-register", "true", "--duke-frame-means", "true"])
    cfg = FitConfig(data="duke", duke_root=str(duke_tree), duke_register=True, duke_frame_means="add", crop=32,
                    out=str(tmp_path / "r"))
    data = load_training_data(cfg)
    assert len(data.sampler.paired_inputs) == 25 + 28
    assert [v.name for v in data.val] == ["S05/test", "T09/raw", "S05/mean2", "S05/mean3"]
    only = load_training_data(FitConfig(**{**cfg.to_json(), "duke_frame_means": "only"}))
    assert len(only.sampler.paired_inputs) == 4 * 26 and only.description["frame_means"] == "only"
    assert [v.name for v in only.val] == ["S05/mean2", "S05/mean3", "S05/mean5"]


def test_synthetic_mean_pairs_have_a_k_frame_means_noise_around_the_aligned_average(duke_tree: Path) -> None:
    pairs = synthetic_mean_pairs("train", (2, 4), duke_tree)
    singles = registered_duke_pairs("train", duke_tree)
    assert len(pairs) == 2 * len(singles) == 2 * (4 * 5 + 5)  # every frame, T02-T07's single ones too
    assert [n for n, _, _ in pairs[:2]] == ["S01/test/synthetic2", "S01/test/synthetic4"]
    assert pairs[-1][0] == "T07/raw/synthetic4"
    for (name, frame, average), (_, two, avg2), (_, four, _) in zip(singles, pairs[0::2], pairs[1::2]):
        assert two.dtype == frame.dtype == np.uint8
        np.testing.assert_array_equal(avg2, average)
        reference = align_reference(frame, average)
        noise = [np.std(x.astype(np.float64) - reference) for x in (frame, two, four)]
        assert noise[1] == pytest.approx(noise[0] / np.sqrt(2), rel=0.05), name  # the fixture's noise sigma is 20
        assert noise[2] == pytest.approx(noise[0] / 2, rel=0.05), name
        assert abs(np.mean(two - reference)) < 0.5  # the scene stays the average's, in the frame's mapping


def test_duke_synthetic_means_flag_is_checked_and_adds_inputs(duke_tree: Path, tmp_path: Path) -> None:
    base = ["--data", "duke", "--duke-register", "true"]
    with pytest.raises(SystemExit, match="duke_synthetic_means needs --duke-frame-means only"):
        parse_args(base + ["--duke-synthetic-means", "2,3"])
    for bad in ("1,2", "two", "2,,3"):
        with pytest.raises(SystemExit, match="frame counts >= 2"):
            parse_args(base + ["--duke-frame-means", "only", "--duke-synthetic-means", bad])
    cfg = FitConfig(data="duke", duke_root=str(duke_tree), duke_register=True, duke_frame_means="only",
                    duke_synthetic_means="2,3,5", crop=32, out=str(tmp_path / "r"))
    data = load_training_data(cfg)
    assert len(data.sampler.paired_inputs) == 4 * 26 + 3 * 25
    assert data.description["synthetic_means"] == [2, 3, 5]
    assert [v.name for v in data.val] == ["S05/mean2", "S05/mean3", "S05/mean5"]  # validation stays real


def _lag1(noise: np.ndarray, axis: int) -> float:
    a, b = (noise[1:], noise[:-1]) if axis == 0 else (noise[:, 1:], noise[:, :-1])
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_correlated_axially_keeps_the_noise_level_and_correlates_only_along_a_scans() -> None:
    white = np.random.default_rng(0).normal(0, 3.0, (300, 300))
    assert correlated_axially(white, 0.0) is white
    grain = correlated_axially(white, 0.9)
    assert grain.std() == pytest.approx(white.std(), rel=1e-9)
    assert abs(_lag1(white, 0)) < 0.03 and 0.68 < _lag1(grain, 0) < 0.78  # Spectralis-like lag-1 correlation
    assert abs(_lag1(grain, 1)) < 0.03  # A-scans stay independent


def test_synthetic_means_with_axial_grain_correlate_the_frames_own_noise(duke_tree: Path) -> None:
    singles = registered_duke_pairs("train", duke_tree)
    white = synthetic_mean_pairs("train", (2,), duke_tree)
    pairs = synthetic_mean_pairs("train", (1, 4), duke_tree, axial_sigma=0.9)
    assert len(pairs) == 2 * len(singles)
    assert [n for n, _, _ in pairs[:2]] == ["S01/test/synthetic1_axial0.9", "S01/test/synthetic4_axial0.9"]
    for (name, frame, average), (_, one, avg1), (_, four, _), (_, two, _) in zip(singles, pairs[0::2], pairs[1::2],
                                                                                 white):
        np.testing.assert_array_equal(avg1, average)
        reference = align_reference(frame, average).astype(np.float64)
        noise = frame - reference
        assert np.std(one - reference) == pytest.approx(np.std(noise), rel=0.03), name  # k = 1: the frame's level
        assert np.std(four - reference) == pytest.approx(np.std(noise) / 2, rel=0.05), name
        assert _lag1(one - reference, 0) > 0.6 and abs(_lag1(one - reference, 1)) < 0.1
        assert abs(_lag1(two - reference, 0)) < 0.1  # without grain the noise stays white
        assert abs(np.mean(one - reference)) < 0.5


def test_duke_synthetic_grain_flag_is_checked_and_feeds_real_runs_reference_pairs(duke_tree: Path,
                                                                                  tmp_path: Path) -> None:
    only = ["--data", "duke", "--duke-register", "true", "--duke-frame-means", "only"]
    with pytest.raises(SystemExit, match="duke_synthetic_grain needs --duke-synthetic-means"):
        parse_args(only + ["--duke-synthetic-grain", "0.9"])
    with pytest.raises(SystemExit, match="from 0 to 5 pixels"):
        parse_args(only + ["--duke-synthetic-means", "2", "--duke-synthetic-grain", "-1"])
    with pytest.raises(SystemExit, match="frame counts >= 1"):
        parse_args(only + ["--duke-synthetic-means", "0,2", "--duke-synthetic-grain", "0.9"])
    cfg, _ = parse_args(only + ["--duke-synthetic-means", "1,2", "--duke-synthetic-grain", "0.9"])
    assert cfg.synthetic_means() == (1, 2) and cfg.duke_synthetic_grain == 0.9  # k = 1 with grain
    real, _ = parse_args(["--data", "real", "--duke-synthetic-means", "2,8", "--duke-synthetic-grain", "0.9"])
    assert real.synthetic_means() == (2, 8)

    _tian_scans(duke_tree, 4)
    base = FitConfig(data="real", shared_data=str(duke_tree.parent), real_duke=False, crop=32, n2n_weight=1.0,
                     ln_min_split_psnr=0.0, out=str(tmp_path / "run"))
    assert load_training_data(base).sampler.targets is None  # column splits only
    cfg = FitConfig(**{**base.to_json(), "duke_synthetic_means": "2,8", "duke_synthetic_grain": 0.9,
                       "duke_align": True})
    data = load_training_data(cfg)
    assert len(data.sampler.paired_inputs) == len(data.sampler.targets) == 2 * 25
    assert data.description["synthetic_duke_pairs"] == 50 and data.description["duke_pairs"] == 0
    assert data.description["synthetic_grain_px"] == 0.9
    x, y = data.sampler.paired_batch(np.random.default_rng(0), 4)
    assert x.shape == y.shape == (4, 1, 32, 32) and 0 <= x.min() and y.max() <= 1


def test_evaluate_grain_scores_correlated_synthetic_means(duke_tree: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ev"
    assert evaluate.main(["--data", "duke", "--split", "val", "--grain", "0.9", "--frames", "8", "--duke-root",
                          str(duke_tree), "--methods", "median", "--out", str(out), "--examples", "1"]) == 0
    assert "noise correlated axially (0.9 px) and divided by sqrt(8)" in (out / "table.md").read_text()
    scores = (out / "scores.csv").read_text()
    assert scores.count("S05/test/synthetic8_axial0.9,") == 2 and scores.count("T09/raw/synthetic8_axial0.9,") == 2
    scaled = tmp_path / "bm3d"
    assert evaluate.main(["--data", "duke", "--split", "val", "--grain", "0.9", "--duke-root", str(duke_tree),
                          "--methods", "bm3d", "--bm3d-scale", "5", "--out", str(scaled), "--examples", "1"]) == 0
    assert "| bm3d x5 |" in (scaled / "table.md").read_text()  # named for its scale, not the tuned default
    assert evaluate.main(["--data", "duke", "--bm3d-scale", "0"]) == 2
    assert evaluate.main(["--data", "duke", "--grain", "0.9", "--every-frame"]) == 2
    assert evaluate.main(["--data", "sim", "--grain", "0.9"]) == 2
    assert evaluate.main(["--data", "duke", "--frames", "8"]) == 2  # real means: at most five frames
    err = capsys.readouterr().err
    assert "--grain 0.9: needs --data duke" in err and "1 to 5 frames" in err and "--bm3d-scale 0.0: must be > 0" in err


def test_validation_bm3d_cache_holds_pairs_of_different_shapes(tmp_path: Path, monkeypatch) -> None:
    """The 2-/3-frame averages are cut to their registered window, smaller than the single frames."""
    from napari_hdcyclegan import baselines
    from training.sources import TrainingData, ValItem
    from training.validate import Validator

    calls: list[tuple[int, int]] = []

    def fake_bm3d(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return np.clip(gaussian_filter(x, 1.0), 0, 1)

    monkeypatch.setattr(baselines, "denoise_bm3d", fake_bm3d)
    rng = np.random.default_rng(0)
    items = []
    for shape in ((96, 128), (90, 121)):
        rows = np.arange(shape[0])[:, None]
        ref = np.where((rows > 30) & (rows < 60), 0.7, 0.2) + 0.05 * gaussian_filter(rng.random(shape), 2)
        noisy = np.clip(ref + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
        items.append(ValItem(f"v{shape[0]}", noisy, ref.astype(np.float32), noisy))
    data = TrainingData(sampler=None, description={}, val=items)  # type: ignore[arg-type]
    cfg = FitConfig(val_bm3d=True)
    first = Validator(cfg, data, tmp_path).reference_scores
    second = Validator(cfg, data, tmp_path).reference_scores  # from the cache
    assert calls == [(96, 128), (90, 121)] and first == second and "bm3d_psnr" in first


def test_duke_val_frames_validates_on_every_registered_frame_of_s05(duke_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="duke_val_frames needs"):
        parse_args(["--data", "duke", "--duke-val-frames", "true"])
    with pytest.raises(SystemExit, match="duke_val_frames needs"):
        parse_args(["--data", "duke", "--duke-register", "true", "--duke-frame-means", "only",
                    "--duke-val-frames", "true"])
    cfg = FitConfig(data="duke", duke_root=str(duke_tree), duke_register=True, duke_val_frames=True, crop=32,
                    out=str(tmp_path / "r"))
    data = load_training_data(cfg)
    assert [v.name for v in data.val] == ["S05/test", "S05/1", "S05/2", "S05/3", "S05/4", "T09/raw"]
    assert data.description["val_every_frame"] is True
    shifted = next(v for v in data.val if v.name == "S05/2")  # the fixture's frame 2 is 1 row, 2 columns off
    first = data.val[0]
    assert np.abs(shifted.noisy - shifted.reference).mean() < 1.2 * np.abs(first.noisy - first.reference).mean()


def test_evaluate_every_frame_scores_each_registered_frame(duke_tree: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ev"
    assert evaluate.main(["--data", "duke", "--split", "val", "--every-frame", "--duke-root", str(duke_tree),
                          "--methods", "median", "--out", str(out), "--examples", "1"]) == 0
    assert "every registered frame" in (out / "table.md").read_text()
    scores = (out / "scores.csv").read_text()
    assert all(scores.count(f"S05/{s},") == 2 for s in ("test", "1", "2", "3", "4"))  # raw and median rows
    assert scores.count("T09/raw,") == 2
    assert evaluate.main(["--data", "duke", "--every-frame", "--frames", "2"]) == 2
    assert "--every-frame: needs" in capsys.readouterr().err


def test_simulated_pairs_without_folds_reach_the_sampler(tmp_path: Path) -> None:
    from training.sources import _sim_stacks

    kept, left_out = (FitConfig(data="real", n2n_weight=1.0, n2n_sim=0.5, sim_n=6, sim_shape=(48, 64), seed=3, crop=16,
                                n2n_sim_folds=f, out=str(tmp_path)) for f in (True, False))
    (with_folds, desc), (without, desc_without) = _sim_stacks(kept), _sim_stacks(left_out)
    assert desc["folds"] is True and desc_without["folds"] is False
    changed = [not np.array_equal(a, b) for a, b in zip(with_folds.stacks, without.stacks)]
    assert any(changed) and not all(changed)  # only the scenes whose retina crosses the top edge differ

