"""training.real: column-split Noise2Noise pairs, split PSNR, and ``--data real`` on a tiny data tree."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from skimage import io

from napari_hdcyclegan.metrics import column_halves
from training import fit
from training.config import FitConfig
from training.data import DataError
from training.real import SplitSampler, load_real, split_psnr
from training.sources import load_training_data


def _scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    rows = np.arange(shape[0])[:, None]
    top = shape[0] // 4 + rng.integers(0, 4)
    return np.where((rows > top) & (rows < top + shape[0] // 3), 0.7, 0.2) + np.zeros(shape)


def _noisy(rng: np.random.Generator, clean: np.ndarray, sigma: float) -> np.ndarray:
    return (np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1) * 255).astype(np.uint8)


@pytest.fixture()
def shared_tree(tmp_path: Path) -> Path:
    """The shared data layout with tiny synthetic images: Tian PNGs, Duke pairs, single noisy scans."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    tian = root / "layers" / "tian2015_octlayers"
    tian.mkdir(parents=True)
    for s in range(1, 6):
        for k in range(1, 3):
            io.imsave(tian / f"Subject{s}_{k:02d}.png", _noisy(rng, _scene(rng, (48, 96)), 0.1),
                      check_contrast=False)
    for group, names, noisy_name in (("duke_fang2013_dt1", [f"S0{i}" for i in range(1, 10)], "test.tif"),
                                     ("duke_fang2013_train", ["T02", "T03", "T04", "T06", "T07", "T09"], "raw.tif")):
        for name in names:
            folder = root / "paired" / group / name
            folder.mkdir(parents=True)
            clean = _scene(rng, (96, 160))
            tifffile.imwrite(folder / noisy_name, _noisy(rng, clean, 0.2))
            tifffile.imwrite(folder / "average.tif", _noisy(rng, clean, 0.02))
    single = root / "single_noisy" / "set"
    single.mkdir(parents=True)
    io.imsave(single / "1.png", _noisy(rng, _scene(rng, (40, 80)), 0.15), check_contrast=False)
    return root


def test_column_halves_interleave() -> None:
    img = np.arange(5 * 7).reshape(5, 7)
    even, odd = column_halves(img)
    assert even.shape == odd.shape == (5, 3)
    np.testing.assert_array_equal(even[:, 1], img[:, 2])
    np.testing.assert_array_equal(odd[:, 1], img[:, 3])


def test_split_sampler_pairs_come_from_neighbouring_columns() -> None:
    img = np.tile(np.arange(64, dtype=np.float32), (40, 1)) / 64
    x, y = SplitSampler([img], 16).batch(np.random.default_rng(0), 8)
    assert x.shape == y.shape == (8, 1, 16, 16)
    # every target column is the input's neighbour: one column apart in the full b-scan
    assert np.allclose(np.abs(x - y), 1 / 64)
    with pytest.raises(DataError, match="smaller than the crop"):
        SplitSampler([img[:, :20]], 16)


def test_split_sampler_with_a_gap_pairs_columns_that_far_apart() -> None:
    img = np.tile(np.arange(64, dtype=np.float32), (40, 1)) / 64
    sampler = SplitSampler([img], 16, gap=3)
    x, y = sampler.batch(np.random.default_rng(0), 8)
    assert x.shape == y.shape == (8, 1, 16, 16)
    assert np.allclose(np.abs(x - y), 3 / 64)
    full, parity = sampler.full_batch(np.random.default_rng(0), 4)
    assert full.shape == (4, 1, 16, 40) and len(parity) == 4
    with pytest.raises(ValueError, match="must be odd"):
        SplitSampler([img], 16, gap=2)
    # halves wide enough for the crop, the full-width crop (2 x 16 + 8) not: refused before a batch is drawn
    with pytest.raises(DataError, match="narrower than a full-width crop"):
        SplitSampler([img[:, :36]], 16, gap=3)
    # without the consistency term no full-width crop is drawn: the halves alone decide
    narrow = SplitSampler([img[:, :36]], 16, gap=3, full_width=False)
    x, y = narrow.batch(np.random.default_rng(0), 4)
    assert np.allclose(np.abs(x - y), 3 / 64)
    with pytest.raises(RuntimeError, match="full_width=False"):
        narrow.full_batch(np.random.default_rng(0), 1)


def test_split_psnr_rewards_denoising_and_penalises_blur() -> None:
    rng = np.random.default_rng(1)
    clean = _scene(rng, (64, 128))
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    identity = split_psnr(lambda a: a, noisy)
    truth = split_psnr(lambda a: column_halves(clean)[0], noisy)  # the scene itself (halves alike)
    flat = split_psnr(lambda a: np.full_like(a, a.mean()), noisy)
    assert truth > identity + 2.5  # noise variance halves when one side is clean
    assert flat < identity


def test_load_real_keeps_validation_out_of_training(shared_tree: Path) -> None:
    sets = load_real(shared_tree, {"method": "dtype"})
    names = [n for n, _ in sets.noisy]
    assert not any("Subject5" in n for n in names)
    assert [n for n, _ in sets.val_split] == ["tian/Subject5_01", "tian/Subject5_02"]
    assert not any(n.startswith(("duke/S05", "duke/S06", "duke/T09")) for n in names)
    assert {n.split("/")[0] for n in names} == {"tian", "single", "duke"}
    assert len(sets.pair_inputs) == len(sets.pair_targets) == 9 and len(sets.ln) == 9
    assert [n for n, _, _ in sets.val_pairs] == ["S05/test", "T09/raw"]
    assert all(0.0 <= im.min() and im.max() <= 1.0 for _, im in sets.noisy)
    # scans at least as clean as the threshold join the LN domain (here: every non-Duke scan)
    assert len(load_real(shared_tree, {"method": "dtype"}, ln_min_split_psnr=0.0).ln) == 9 + 8 + 1


def test_load_real_holds_out_named_scans_for_split_validation(shared_tree: Path) -> None:
    sets = load_real(shared_tree, {"method": "dtype"}, duke=False, hold_out=("single/set/1",))
    assert "single/set/1" not in [n for n, _ in sets.noisy]
    assert [n for n, _ in sets.val_split] == ["tian/Subject5_01", "tian/Subject5_02", "single/set/1"]
    with pytest.raises(DataError, match="cannot hold out"):
        load_real(shared_tree, {"method": "dtype"}, hold_out=("single/set/9",))


def test_split_sampler_extra_noise_is_another_scans_speckle_on_the_input_only() -> None:
    rng = np.random.default_rng(3)
    rows = np.linspace(0.2, 0.8, 48, dtype=np.float32)[:, None]  # axial layers, flat across A-scans
    scans = [rows + np.zeros((48, 64), np.float32) + rng.normal(0, 0.05, (48, 64)).astype(np.float32)
             for _ in range(2)]
    plain = SplitSampler(scans, 16)
    noisier = SplitSampler(scans, 16, extra_noise=2.0)
    x0, y0 = plain.batch(np.random.default_rng(0), 64)
    x1, y1 = noisier.batch(np.random.default_rng(0), 64)
    np.testing.assert_array_equal(y0, y1)  # same crops, and the targets untouched
    added = x1 - x0
    assert abs(float(added.mean())) < 0.005  # speckle without the scene: no layers, no offset
    # alpha ~ U(0, 2) times one half's noise (std 0.05): E[alpha^2] = 4/3, so std ~ 0.058
    assert 0.045 < float(added.std()) < 0.07
    # never the input's own scan: independent of the pair's noise, which must not leak into the input
    assert abs(np.corrcoef(added.ravel(), (x0 - y0).ravel())[0, 1]) < 0.05
    with pytest.raises(DataError, match="at least two noisy scans"):
        SplitSampler(scans[:1], 16, extra_noise=1.0)


def test_split_sampler_shrink_resamples_both_halves_alike() -> None:
    rows, cols = np.mgrid[0:96, 0:128].astype(np.float32)
    img = (rows + 1000 * cols) / 1e5  # a ramp down the A-scans and across them
    x, y = SplitSampler([img], 16, shrink=0.5).batch(np.random.default_rng(0), 64)
    assert x.shape == y.shape == (64, 1, 16, 16) and x.dtype == np.float32
    # resampled alike, along the A-scans only: the pair stays one column apart
    np.testing.assert_allclose(np.abs(x - y), 1000 / 1e5, atol=1e-6)
    # the step down the A-scans grows by 1 / scale: native crops keep it, shrunk ones reach up to 2x
    step = np.median(np.diff(x[:, 0], axis=1), axis=(1, 2)) * 1e5
    assert step.min() > 0.99 and step.max() < 2.01
    native = np.isclose(step, 1.0, atol=0.01)  # float32 rounding of the ramp
    assert 0.3 < native.mean() < 0.7 and step.max() > 1.6
    with pytest.raises(DataError, match="shrink"):
        SplitSampler([img], 16, shrink=1.5)
    x, _ = SplitSampler([img], 16, shrink=0.5, shrink_share=0.9).batch(np.random.default_rng(0), 64)
    step = np.median(np.diff(x[:, 0], axis=1), axis=(1, 2)) * 1e5
    assert np.isclose(step, 1.0, atol=0.01).mean() < 0.25  # --shrink-share: most crops shrunk


def test_split_sampler_shrink_keeps_neighbouring_a_scans_independent() -> None:
    noise = np.random.default_rng(0).normal(0, 1, (200, 400)).astype(np.float32)
    full, parity = SplitSampler([noise], 32, shrink=0.5).full_batch(np.random.default_rng(1), 64)
    assert full.shape == (64, 1, 32, 64) and full.dtype == np.float32 and len(parity) == 64

    def lag1(a: np.ndarray, axis: int) -> float:
        a = a - a.mean()
        return float((a * np.roll(a, 1, axis=axis)).mean() / a.var())

    shrunk = full[:, 0].std(axis=(1, 2)) < 0.95  # anti-aliasing along the A-scans averages the noise
    assert 0.3 < shrunk.mean() < 0.7
    # no mixing across A-scans (the column halves' noise stays independent), some along them
    assert abs(lag1(full[shrunk, 0], 2)) < 0.03
    assert lag1(full[shrunk, 0], 1) > 0.05


def test_real_run_wires_hold_out_and_extra_noise(shared_tree: Path, tmp_path: Path) -> None:
    cfg = FitConfig(data="real", shared_data=str(shared_tree), real_duke=False, crop=32, n2n_weight=1.0,
                    real_hold_out="single/set/1", n2n_extra_noise=0.7, ln_min_split_psnr=0.0,
                    out=str(tmp_path / "run"))
    data = load_training_data(cfg)
    assert data.split is not None and data.split.extra_noise == 0.7
    assert "single/set/1" in data.description["never_used"]
    assert [n for n, _ in data.val_split][-1] == "single/set/1"


def test_load_real_aligns_the_duke_ln_images_with_the_targets(shared_tree: Path) -> None:
    aligned = load_real(shared_tree, {"method": "dtype"}, duke_align=True)
    plain = load_real(shared_tree, {"method": "dtype"})
    assert not np.allclose(aligned.pair_targets[0], plain.pair_targets[0])
    np.testing.assert_allclose(aligned.ln[0], aligned.pair_targets[0], atol=1e-6)  # S01's first frame
    np.testing.assert_allclose(plain.ln[0], plain.pair_targets[0], atol=1e-6)


def test_load_real_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_real(tmp_path / "nothing", {"method": "dtype"})


def test_real_training_steps_log_n2n_and_discriminator_diagnostics(shared_tree: Path, tmp_path: Path) -> None:
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=32, batch=2, pretrain_steps=2, steps=2, n2n_weight=5.0, paired_weight=1.0,
                    val_bm3d=False, ckpt_every=1000, val_every=1000, threads=1)
    data = load_training_data(cfg)
    assert data.split is not None and data.val_split
    trainer = fit.Trainer(cfg, data)
    rows = [trainer.step() for _ in range(4)]
    assert all(r["loss_n2n"] > 0 for r in rows)
    gan = rows[-1]
    for key in ("d_real_h", "d_real_l", "d_fake"):
        assert 0.0 < gan[key] < 1.0
    fit.run(FitConfig(**{**cfg.to_json(), "out": str(tmp_path / "run2"), "val_every": 4, "ckpt_every": 4}))
    val = (tmp_path / "run2" / "val.csv").read_text().splitlines()
    header, last = val[0].split(","), val[-1].split(",")
    split = float(last[header.index("split_psnr")])
    assert np.isfinite(split) and float(last[header.index("raw_split_psnr")]) > 0


def test_real_without_duke_trains_g_l_on_column_splits_only(shared_tree: Path, tmp_path: Path) -> None:
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=32, batch=2, pretrain_steps=3, steps=1, n2n_weight=1.0, real_duke=False,
                    ln_min_split_psnr=0.0, val_bm3d=False, ckpt_every=2, val_every=2, threads=1)
    data = load_training_data(cfg)
    assert data.sampler.targets is None and not data.val and data.val_split
    assert not any(n.startswith("duke") for n in data.description["noisy_sources"])
    fit.run(cfg)
    header, *rows = [r.split(",") for r in (tmp_path / "run" / "val.csv").read_text().splitlines()]
    assert [r[header.index("step")] for r in rows] == ["2", "4"]
    assert all(float(r[header.index("split_psnr")]) > 0 for r in rows)
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[1].split(",")[1] == "pretrain_G" and log[-1].split(",")[1] == "gan"


def test_column_split_term_refuses_several_processes(shared_tree: Path, tmp_path: Path) -> None:
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=32, batch=2, n2n_weight=1.0, val_bm3d=False, threads=1)
    with pytest.raises(SystemExit, match="several processes"):
        fit.Trainer(cfg, load_training_data(cfg), rank=0, world=2)


def test_consistency_term_trains_on_full_width_crops(shared_tree: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=16, batch=2, pretrain_steps=2, steps=1, n2n_weight=1.0, n2n_consistency=2.0,
                    real_duke=False, ln_min_split_psnr=0.0, val_bm3d=False, ckpt_every=1000, val_every=1000,
                    threads=1)
    data = load_training_data(cfg)
    calls = []
    full_batch = SplitSampler.full_batch

    def spy(self: SplitSampler, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, list[int]]:
        out = full_batch(self, rng, batch)
        calls.append(out[0].shape)
        return out

    monkeypatch.setattr(SplitSampler, "full_batch", spy)
    trainer = fit.Trainer(cfg, data)
    rows = [trainer.step() for _ in range(3)]
    assert calls == [(2, 1, 16, 32)] * 3
    assert all(np.isfinite(r["loss_n2n"]) and r["loss_n2n"] > 0 for r in rows)


def test_a_column_gap_reaches_the_consistency_term(shared_tree: Path, tmp_path: Path, monkeypatch) -> None:
    from napari_hdcyclegan import column_pairs
    from training import losses

    gaps: list[int] = []
    loss = column_pairs.neighbour_loss

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        gaps.append(args[-1])
        return loss(*args, **kwargs)

    monkeypatch.setattr(losses, "neighbour_loss", spy)
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=16, batch=2, pretrain_steps=2, steps=0, n2n_weight=1.0, n2n_consistency=2.0, n2n_gap=3,
                    real_duke=False, ln_min_split_psnr=0.0, val_bm3d=False, ckpt_every=1000, val_every=1000,
                    threads=1)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    rows = [trainer.step() for _ in range(2)]
    assert gaps == [3, 3] and all(np.isfinite(r["loss_n2n"]) and r["loss_n2n"] > 0 for r in rows)


def test_blind_spot_term_trains_on_full_width_crops_of_the_real_scans(shared_tree: Path, tmp_path: Path) -> None:
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=16, batch=2, pretrain_steps=2, steps=0, n2n_weight=1.0, n2n_consistency=2.0,
                    blind_spot_weight=3.0, real_duke=False, ln_min_split_psnr=0.0, val_bm3d=False,
                    ckpt_every=1000, val_every=1000, threads=1)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    rows = [trainer.step() for _ in range(2)]
    assert all(np.isfinite(r["loss_blind_spot"]) and r["loss_blind_spot"] > 0 for r in rows)
    off = fit.Trainer(replace(cfg, blind_spot_weight=0.0, out=str(tmp_path / "off")), load_training_data(cfg))
    assert off.step()["loss_blind_spot"] == 0


@pytest.mark.parametrize("consistency", [0.0, 2.0])
def test_mean_weight_reaches_the_column_split_term(shared_tree: Path, tmp_path: Path, monkeypatch,
                                                   consistency: float) -> None:
    from napari_hdcyclegan import column_pairs
    from training import losses

    seen: list[tuple[int, tuple[int, ...]]] = []

    def spy(output: torch.Tensor, anchor: torch.Tensor, width: int = 32) -> torch.Tensor:
        seen.append((width, tuple(anchor.shape)))
        return output.sum() * 0

    monkeypatch.setattr(losses, "lateral_mean_loss", spy)
    monkeypatch.setattr(column_pairs, "lateral_mean_loss", spy)
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=16, batch=2, pretrain_steps=2, steps=0, n2n_weight=1.0, n2n_consistency=consistency,
                    mean_weight=3.0, mean_width=12, mean_anchor="target", real_duke=False, ln_min_split_psnr=0.0,
                    val_bm3d=False, ckpt_every=1000, val_every=1000, threads=1)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    trainer.step()
    # one call per step, on the column-half crops, over half the A-scans --mean-width counts
    assert seen == [(6, (2, 1, 16, 16))]
    no_split = replace(cfg, n2n_weight=0.0, n2n_consistency=0.0, out=str(tmp_path / "bad"))
    with pytest.raises(SystemExit, match="mean-weight needs paired data or the column-split term"):
        fit.Trainer(no_split, load_training_data(no_split))


def _teacher_dir(tmp_path: Path, seed: int) -> Path:
    from napari_hdcyclegan.model.checkpoint import ModelConfig, save_model
    from napari_hdcyclegan.model.networks import Generator

    torch.manual_seed(seed)
    config = ModelConfig(generator_width=8, discriminator_width=4, discriminator_levels=3, name="teacher",
                         trained=True)
    return save_model(tmp_path / f"teacher{seed}", {"G_L": Generator(width=8, residual=True)}, config)


def test_teacher_target_is_its_generator_output_and_stays_frozen(tmp_path: Path) -> None:
    from training.teacher import Teacher

    teacher = Teacher(_teacher_dir(tmp_path, 0), torch.device("cpu"))
    full = torch.rand(2, 1, 16, 32)
    assert torch.equal(teacher.target(full), teacher.net(full).float())
    assert not any(p.requires_grad for p in teacher.net.parameters())
    split = SplitSampler([np.random.default_rng(1).random((40, 80), dtype=np.float32)], 16)

    def loss_of(student: torch.nn.Module) -> torch.Tensor:
        return teacher.loss(student, split, np.random.default_rng(2), 2, torch.from_numpy)

    assert loss_of(teacher.net).item() == 0.0  # a student that is the teacher matches it exactly
    student = Teacher(_teacher_dir(tmp_path, 1), torch.device("cpu")).net.requires_grad_(True)
    with torch.no_grad():  # a fresh residual generator is the identity: move it away from the teacher
        for p in student.parameters():
            p.add_(0.1 * torch.randn_like(p))
    loss = loss_of(student)
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


def test_teacher_term_trains_g_l_towards_the_teacher(shared_tree: Path, tmp_path: Path) -> None:
    teacher = _teacher_dir(tmp_path, 0)
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=8, d_width=4,
                    crop=16, batch=2, pretrain_steps=30, steps=0, pretrain_gh=False, residual=True,
                    teacher=str(teacher), teacher_weight=1.0, pretrain_lr=3e-3, real_duke=False,
                    ln_min_split_psnr=0.0, val_bm3d=False, ckpt_every=1000, val_every=1000, threads=1)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    assert trainer.teacher is not None and trainer.data.split is not None
    before = [p.detach().clone() for p in trainer.gens.G_H.parameters()]

    def held_out_loss() -> float:
        with torch.no_grad():
            return trainer.teacher.loss(trainer.gens.G_L, trainer.data.split, np.random.default_rng(7), 8,
                                        torch.from_numpy).item()

    start = held_out_loss()
    rows = [trainer.step() for _ in range(30)]
    # no column-split weight: G_L learns from the teacher alone (no autoencoder term), G_H is untouched
    assert all(r["loss_n2n"] == 0 and r["loss_teacher"] > 0 for r in rows)
    assert held_out_loss() < 0.5 * start
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.gens.G_H.parameters(), strict=True))


@pytest.mark.parametrize(("extra", "message"), [
    (["--teacher", "some/model"], "go together"),
    (["--teacher-weight", "2"], "go together"),
    (["--teacher", "some/model", "--teacher-weight", "-1"], "go together"),
    (["--teacher", "m", "--teacher-weight", "1", "--n2n-weight", "1", "--n2n-extra-noise", "1"], "cannot be combined"),
])
def test_teacher_flags_are_checked(extra: list[str], message: str) -> None:
    from training.config import parse_args

    with pytest.raises(SystemExit, match=message):
        parse_args(["--data", "real", *extra])
    if message == "go together" and "-1" not in extra and "--teacher" in extra:
        with pytest.raises(SystemExit, match="need --data real"):
            parse_args(["--data", "sim", "--teacher", "m", "--teacher-weight", "1"])


def test_val_sim_scores_simulated_truth_and_picks_best(shared_tree: Path, tmp_path: Path) -> None:
    cfg = FitConfig(data="real", shared_data=str(shared_tree), out=str(tmp_path / "run"), width=4, d_width=4,
                    crop=32, batch=2, pretrain_steps=4, steps=0, n2n_weight=1.0, real_duke=False,
                    pretrain_gh=False, ln_min_split_psnr=0.0, val_bm3d=False, ckpt_every=2, val_every=2,
                    threads=1, val_sim=2, select_on="sim")
    fit.run(cfg)
    header, *rows = [r.split(",") for r in (tmp_path / "run" / "val.csv").read_text().splitlines()]
    col = {name: [float(r[header.index(name)]) for r in rows] for name in ("score", "sim_psnr", "raw_sim_psnr")}
    assert len(rows) == 2 and col["score"] == col["sim_psnr"]
    assert all(10 < v < 60 for v in col["sim_psnr"] + col["raw_sim_psnr"])
    assert all(float(r[header.index("split_psnr")]) > 0 for r in rows)  # the real-scan measure is kept beside it
    from napari_hdcyclegan.metrics import offset_free_psnr
    from napari_hdcyclegan.simulate import truth_pairs
    from training.validate import SIM_SEED

    raw = np.mean([offset_free_psnr(scan - truth) for scan, truth in truth_pairs(2, seed=SIM_SEED)])
    assert col["raw_sim_psnr"][0] == pytest.approx(raw, abs=1e-6)  # offset-free, as split_ceiling.py


@pytest.mark.parametrize(("extra", "message"), [
    (["--select-on", "sim"], "val_sim must be"),
    (["--val-sim", "-1"], "val_sim must be"),
    (["--select-on", "truth"], "select_on must be"),
])
def test_val_sim_flags_are_checked(extra: list[str], message: str) -> None:
    from training.config import parse_args

    with pytest.raises(SystemExit, match=message):
        parse_args(["--data", "real", *extra])
