"""training.fit: the objective learns, resume is exact, DDP runs, checkpoints load in the core."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import io

from napari_hdcyclegan.model.checkpoint import CheckpointError, load_model
from training import fit
from training.config import FitConfig, parse_args
from training.data import CropSampler, DataError, read_folder
from training.sources import load_training_data

REPO = Path(__file__).resolve().parents[1]


def _write_domain(folder: Path, n: int, noise: float, seed: int, size: int = 40) -> Path:
    """Layered synthetic b-scans with multiplicative noise of a given strength, as PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = np.arange(size)[:, None]
    for i in range(n):
        top = 8 + rng.integers(0, 6)
        clean = np.where((rows > top) & (rows < top + 18), 0.7, 0.15) + np.zeros((size, size))
        noisy = clean * rng.gamma(1 / noise**2, noise**2, clean.shape)
        io.imsave(folder / f"b{i}.png", (np.clip(noisy, 0, 1) * 255).astype(np.uint8), check_contrast=False)
    return folder


@pytest.fixture()
def domains(tmp_path: Path) -> str:
    hn = _write_domain(tmp_path / "hn", 6, 0.5, 0)
    ln = _write_domain(tmp_path / "ln", 6, 0.15, 1)
    return f"{hn},{ln}"


def _cfg(domains: str, out: Path, **kw) -> FitConfig:
    base = dict(data=domains, out=str(out), width=4, d_width=4, crop=32, batch=2, sim_val_n=0,
                val_bm3d=False, ckpt_every=1000, val_every=1000, threads=1)
    base.update(kw)
    return FitConfig(**base)


def test_few_steps_lower_cycle_loss(domains: str, tmp_path: Path) -> None:
    cfg = _cfg(domains, tmp_path / "run", steps=40, lr=2e-3)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    cycle = [trainer.step()["loss_cycle"] for _ in range(cfg.steps)]
    assert np.mean(cycle[-5:]) < 0.7 * np.mean(cycle[:5])


def test_r1_penalty_is_the_squared_input_gradient_of_the_true_class() -> None:
    from training.losses import r1_penalty

    class Linear(torch.nn.Module):  # logits = w * mean(x): d log p_k / dx is known in closed form
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2, 3))[:, None] * self.w

    d = Linear()
    x = torch.rand(3, 1, 4, 5)
    r1 = r1_penalty(d, x, n_real_h=1)
    m = x.mean(dim=(1, 2, 3))
    p = torch.softmax(m[:, None] * d.w.detach(), dim=1)
    cls = torch.tensor([0, 1, 1])
    dlogp_dm = d.w.detach()[cls] - (p * d.w.detach()).sum(1)  # d/dm log softmax_k(m w)
    want = (dlogp_dm ** 2 / 20).mean()  # each of the 20 pixels gets dlogp_dm / 20
    assert torch.allclose(r1, want, rtol=1e-5)
    r1.backward()
    assert d.w.grad is not None and torch.isfinite(d.w.grad).all()  # it trains D


def test_r1_gamma_adds_a_logged_penalty_to_the_discriminator_step(domains: str, tmp_path: Path) -> None:
    rows = {}
    for gamma in (0.0, 10.0):
        cfg = _cfg(domains, tmp_path / f"run{gamma}", steps=2, r1_gamma=gamma)
        trainer = fit.Trainer(cfg, load_training_data(cfg))
        rows[gamma] = trainer.step()
    assert rows[0.0]["loss_r1"] == 0.0
    assert rows[10.0]["loss_r1"] > 0 and np.isfinite(rows[10.0]["loss_D"])


def test_resume_reproduces_uninterrupted_run(domains: str, tmp_path: Path) -> None:
    kw = dict(steps=4, pretrain_steps=2, pretrain_d_steps=1, pool_size=2)
    straight = fit.Trainer(_cfg(domains, tmp_path / "a", **kw), load_training_data(_cfg(domains, tmp_path / "a")))
    for _ in range(7):
        straight.step()

    cfg = _cfg(domains, tmp_path / "b", **kw)
    first = fit.Trainer(cfg, load_training_data(cfg))
    for _ in range(4):  # stops after four steps, mid adversarial phase, like a kill after a checkpoint
        first.step()
    first.save("last")
    second = fit.Trainer(cfg, load_training_data(cfg))
    second.load("last")
    assert second.step_no == 4
    for _ in range(3):
        second.step()
    for part, net in straight.nets().items():
        for (k, a), b in zip(net.state_dict().items(), second.nets()[part].state_dict().values()):
            assert torch.equal(a, b), f"{part}.{k} differs after resume"


def test_ema_validates_and_exports_the_weight_average_and_resumes_exactly(domains: str, tmp_path: Path) -> None:
    kw = dict(steps=3, pretrain_steps=2, ema=0.75)
    cfg = _cfg(domains, tmp_path / "a", **kw)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    trainer.step()
    w1 = {k: v.clone() for k, v in trainer.gens.G_L.state_dict().items()}
    trainer.step()
    for k, w2 in trainer.gens.G_L.state_dict().items():  # the first update copies, then 0.75 old + 0.25 new
        assert torch.allclose(trainer.model_g_l.state_dict()[k], 0.75 * w1[k] + 0.25 * w2, atol=1e-6), k
    trainer.save("last")
    exported, _ = load_model(tmp_path / "a" / "last", parts=("G_L",))
    for k, v in exported["G_L"].state_dict().items():  # float16 on disk
        assert torch.allclose(v.float(), trainer.model_g_l.state_dict()[k], atol=2e-3), k
    assert not all(torch.equal(a, b) for a, b in zip(trainer.gens.G_L.state_dict().values(),
                                                     trainer.model_g_l.state_dict().values()))
    second = fit.Trainer(cfg, load_training_data(cfg))
    second.load("last")
    for _ in range(3):
        trainer.step()
        second.step()
    for a, b in ((trainer.gens.G_L, second.gens.G_L), (trainer.model_g_l, second.model_g_l)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), f"G_L {k} differs after resume"
    with pytest.raises(SystemExit, match="ema must be"):
        parse_args(["--ema", "1"])


def test_run_writes_logs_checkpoints_and_resumes(domains: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", domains, "--out", str(out), "--width", "4", "--d-width", "4", "--crop", "32",
            "--batch", "2", "--steps", "3", "--pretrain-steps", "1", "--ckpt-every", "2", "--sim-val-n", "0",
            "--threads", "1"]
    assert fit.main(args) == 0
    for name in ("log.csv", "loss.png", "fit_config.json", "last/config.json", "last/model.safetensors",
                 "last/resume.pt"):
        assert (out / name).is_file(), name
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 4
    with pytest.raises(SystemExit, match="already holds a run"):
        fit.main(args)
    with (out / "log.csv").open("a") as fh:  # killed after step 4's checkpoint, having logged step 5
        fh.write("5,gan" + "," * (len(fit.LOG_FIELDS) - 2) + "\n")
    assert fit.main([*args[:-6], "--steps", "5", "--pretrain-steps", "1", "--resume", "--threads", "1"]) == 0
    steps = [line.split(",")[0] for line in (out / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4", "5", "6"]  # step 5 logged once, by the resumed run


def test_a_fresh_start_refuses_a_folder_a_killed_run_left(domains: str, tmp_path: Path) -> None:
    """Killed between save()'s renames (only last.old) or before its first checkpoint (logs only), a run
    folder was taken for empty: the new run deleted last.old or appended its steps to the old log."""
    out = tmp_path / "run"
    args = ["--data", domains, "--out", str(out), "--width", "4", "--d-width", "4", "--crop", "32", "--batch", "2",
            "--steps", "2", "--pretrain-steps", "1", "--ckpt-every", "1", "--sim-val-n", "0", "--threads", "1"]
    assert fit.main(args) == 0
    (out / "last").rename(out / "last.old")
    log = (out / "log.csv").read_text()
    with pytest.raises(SystemExit, match=r"already holds a run \(last.old, log.csv\)"):
        fit.main(args)
    assert (out / "last.old" / "resume.pt").is_file() and (out / "log.csv").read_text() == log  # nothing lost
    for name in ("last.old", "best"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    with pytest.raises(SystemExit, match=r"already holds a run \(log.csv\)"):
        fit.main(args)


def test_init_from_refuses_a_base_model_that_does_not_fit(domains: str, tmp_path: Path) -> None:
    base = tmp_path / "base"
    fit.run(_cfg(domains, base, steps=1, pretrain_steps=0))
    trainer = fit.Trainer(_cfg(domains, tmp_path / "wide", width=8), load_training_data(_cfg(domains, tmp_path)))
    with pytest.raises(SystemExit, match="does not fit this run's generator"):
        trainer.init_from(base / "last")  # it loaded nothing and trained from scratch, saying it had initialised
    trainer = fit.Trainer(_cfg(domains, tmp_path / "res", residual=True), load_training_data(_cfg(domains, tmp_path)))
    with pytest.raises(SystemExit, match="trained with residual false; pass --residual false"):
        trainer.init_from(base / "last")  # same shapes: it loaded, wired to another output
    same = fit.Trainer(_cfg(domains, tmp_path / "same"), load_training_data(_cfg(domains, tmp_path)))
    assert "G_L" in same.init_from(base / "last")


def test_resume_alone_continues_with_the_runs_own_settings(domains: str, tmp_path: Path) -> None:
    """`--out RUN --resume` rebuilt the run from the defaults: a width-4 run failed to load (size mismatch)."""
    out = tmp_path / "run"
    assert fit.main(["--data", domains, "--out", str(out), "--width", "4", "--d-width", "4", "--crop", "32",
                     "--batch", "2", "--steps", "2", "--pretrain-steps", "1", "--ckpt-every", "1",
                     "--sim-val-n", "0", "--threads", "1"]) == 0
    assert fit.main(["--out", str(out), "--resume", "--steps", "3"]) == 0  # a flag still overrides
    saved = json.loads((out / "fit_config.json").read_text())
    assert (saved["width"], saved["crop"], saved["steps"]) == (4, 32, 3)
    assert [line.split(",")[0] for line in (out / "log.csv").read_text().splitlines()[1:]] == ["1", "2", "3", "4"]


def test_export_never_replaces_a_checkpoint_and_asks_before_replacing_a_model(domains: str, tmp_path: Path,
                                                                               capsys) -> None:
    from training.export import main as export_main

    cfg = _cfg(domains, tmp_path / "run", steps=1)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    trainer.step()
    best, last = trainer.save("best", with_state=False), trainer.save("last")
    state = (last / "resume.pt").read_bytes()
    assert export_main([str(best), str(last)]) == 2  # it wrote a float16 G_L over the run's resume point
    assert "holds a training checkpoint" in capsys.readouterr().err and (last / "resume.pt").read_bytes() == state
    assert export_main([str(best), str(tmp_path / "model")]) == 0
    assert export_main([str(best), str(tmp_path / "model")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert export_main([str(best), str(tmp_path / "model"), "--overwrite"]) == 0


def test_resume_refuses_flags_that_change_what_the_run_trains(domains: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert fit.main(["--data", domains, "--out", str(out), "--width", "4", "--d-width", "4", "--crop", "32",
                     "--batch", "2", "--steps", "2", "--pretrain-steps", "1", "--ckpt-every", "1",
                     "--sim-val-n", "0", "--threads", "1"]) == 0
    saved = (out / "fit_config.json").read_text()
    with pytest.raises(SystemExit, match=r"these flags change it: --lr \(0.0005 in the run\), --seed \(0"):
        fit.main(["--out", str(out), "--resume", "--lr", "0.1", "--seed", "5"])
    with pytest.raises(SystemExit, match=r"--width \(4 in the run\)"):
        fit.main(["--out", str(out), "--resume", "--width", "8"])  # was a 59-line state-dict traceback
    assert (out / "fit_config.json").read_text() == saved  # the record was not rewritten
    assert fit.main(["--out", str(out), "--resume", "--steps", "3", "--width", "4", "--threads", "1"]) == 0
    (out / "fit_config.json").unlink()
    with pytest.raises(SystemExit, match="fit_config.json is missing"):
        fit.main(["--out", str(out), "--resume"])  # it rebuilt the run from the defaults


@pytest.mark.parametrize("flags,said", [
    (["--ckpt-every", "0"], "ckpt_every must be >= 1"),  # was a ZeroDivisionError after one step
    (["--batch", "0"], "batch must be >= 1"),
    (["--width", "0"], "width must be >= 1"),
    (["--lr", "-1"], "lr and pretrain_lr must be > 0"),
    (["--steps", "0", "--pretrain-steps", "0"], "at least one step in all"),
])
def test_settings_that_cannot_run_are_refused_in_one_line(flags, said) -> None:
    with pytest.raises(SystemExit, match=said):
        parse_args(flags)
    assert parse_args(["--steps", "0", "--pretrain-steps", "5"])[0].steps == 0  # pretraining only: the recipes


def test_bad_data_and_a_bad_config_file_are_one_line_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "hn").mkdir()
    (tmp_path / "ln").mkdir()
    assert fit.main(["--data", f"{tmp_path / 'hn'},{tmp_path / 'ln'}", "--out", str(tmp_path / "run"),
                     "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # no empty run folder left behind
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match="--config .*bad.json"):
        parse_args(["--config", str(tmp_path / "bad.json")])


def test_checkpoint_loads_in_core_and_cli(domains: str, tmp_path: Path) -> None:
    from training.export import export

    cfg = _cfg(domains, tmp_path / "run", steps=1, lateral_sigma=0.8)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    trainer.step()
    ckpt = trainer.save("last")
    model = export(ckpt, tmp_path / "model", name="tiny")
    nets, config = load_model(model)
    assert config.trained and config.name == "tiny" and "weights_sha256" in config.provenance
    assert config.lateral_sigma == 0.8  # the smoothing validated in training ships with the model
    with pytest.raises(CheckpointError, match="G_H"):
        load_model(model, parts=("G_H",))

    from napari_hdcyclegan.engine import get_denoiser

    image = (np.random.default_rng(0).random((2, 40, 44)) * 255).astype(np.uint8)
    denoiser = get_denoiser(model, device="cpu")
    assert denoiser.trained and denoiser.name == "tiny"
    out = denoiser.denoise(image)
    assert out.shape == image.shape and out.dtype == np.uint8

    src = tmp_path / "in.tif"
    import tifffile

    tifffile.imwrite(src, image)
    dst = tmp_path / "out.tif"
    res = subprocess.run([sys.executable, "-m", "napari_hdcyclegan", "denoise", str(src), str(dst),
                          "--weights", str(model), "--device", "cpu"], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    assert tifffile.imread(dst).shape == image.shape


def test_ddp_two_cpu_processes(domains: str, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         "-m", "training.fit", "--data", domains, "--out", str(out), "--device", "cpu", "--width", "4",
         "--d-width", "4", "--crop", "32", "--batch", "2", "--steps", "2", "--pretrain-steps", "1",
         "--sim-val-n", "0", "--threads", "1"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "last" / "model.safetensors").is_file()
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 3  # only rank 0 logs


def _torchrun(port: int, args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(port), "-m", "training.fit", *args], capture_output=True, text=True, cwd=REPO,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def test_ddp_resume_is_exact(domains: str, tmp_path: Path) -> None:
    """Every rank resumes its own RNG and fake pools: only rank 0's were saved, and every rank loaded them."""
    common = ["--data", domains, "--device", "cpu", "--width", "4", "--d-width", "4", "--crop", "32", "--batch", "2",
              "--pretrain-steps", "1", "--ckpt-every", "2", "--sim-val-n", "0", "--threads", "1", "--pool-size", "4"]
    _torchrun(29521, [*common, "--out", str(tmp_path / "straight"), "--steps", "6"])
    _torchrun(29522, [*common, "--out", str(tmp_path / "split"), "--steps", "3"])
    _torchrun(29523, ["--out", str(tmp_path / "split"), "--resume", "--steps", "6"])
    a, _ = load_model(tmp_path / "straight" / "last", parts=("G_L",))
    b, _ = load_model(tmp_path / "split" / "last", parts=("G_L",))
    for (k, x), y in zip(a["G_L"].state_dict().items(), b["G_L"].state_dict().values()):
        assert torch.equal(x, y), f"G_L {k} differs after a distributed resume"


def test_data_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no TIFF/PNG/JPEG"):
        read_folder(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    io.imsave(mixed / "a.png", np.zeros((10, 12), np.uint8), check_contrast=False)
    io.imsave(mixed / "b.png", np.zeros((11, 12), np.uint8), check_contrast=False)
    with pytest.raises(DataError, match="mixed shapes"):
        read_folder(mixed)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.tif").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match="unreadable"):
        read_folder(bad)
    with pytest.raises(DataError, match="smaller than the crop"):
        CropSampler([np.zeros((10, 10))], [np.zeros((10, 10))], crop=32)


def test_config_file_and_flags(tmp_path: Path) -> None:
    conf = tmp_path / "c.json"
    conf.write_text('{"steps": 7, "crop": 64, "lr": 0.001}')
    cfg, resume = parse_args(["--config", str(conf), "--crop", "96", "--amp", "true"])
    assert (cfg.steps, cfg.crop, cfg.lr, cfg.amp, resume) == (7, 96, 0.001, True, False)
    assert FitConfig(crop=256).d_levels_for_crop() == 7  # the paper's discriminator
    assert FitConfig(crop=128).d_levels_for_crop() == 6
    conf.write_text('{"stepz": 1}')
    with pytest.raises(SystemExit, match="unknown keys"):
        parse_args(["--config", str(conf)])
    with pytest.raises(SystemExit, match="select_on must be all, pairs, split or sim"):
        parse_args(["--select-on", "psnr"])
    with pytest.raises(SystemExit, match="lateral_sigma must be from 0 to 16"):
        parse_args(["--lateral-sigma", "-1"])
    with pytest.raises(SystemExit, match="n2n_extra_noise must be >= 0"):
        parse_args(["--data", "real", "--n2n-extra-noise", "-0.5"])
    with pytest.raises(SystemExit, match=r"n2n_shrink must be 0 \(off\) or in \(0, 1\]"):
        parse_args(["--data", "real", "--n2n-shrink", "2"])
    with pytest.raises(SystemExit, match="n2n_shrink.*need --data real"):
        parse_args(["--data", "sim", "--n2n-shrink", "0.5"])
    assert parse_args(["--data", "real", "--n2n-shrink", "0.5"])[0].n2n_shrink == 0.5
    with pytest.raises(SystemExit, match="paired_folders needs"):
        parse_args(["--data", "duke", "--paired-folders", "true"])
    with pytest.raises(SystemExit, match="need --data real"):
        parse_args(["--data", "sim", "--real-hold-out", "single/x/1"])
    conf.write_text('{"lateral_sigma": 1, "sim_shape": [64, 96], "residual": true}')
    cfg, _ = parse_args(["--config", str(conf)])
    assert (cfg.lateral_sigma, cfg.sim_shape, cfg.residual) == (1.0, (64, 96), True)
    assert isinstance(cfg.lateral_sigma, float)
    for bad in ('{"lateral_sigma": "1"}', '{"steps": 2.5}', '{"residual": "false"}', '{"sim_shape": [64]}'):
        conf.write_text(bad)
        with pytest.raises(SystemExit, match="must be like"):  # a saved model's config would not load
            parse_args(["--config", str(conf)])
    with pytest.raises(SystemExit):  # a typo is an error, not false
        parse_args(["--residual", "treu"])


def test_paired_loss_option_reaches_the_supervised_step(domains: str, tmp_path: Path, monkeypatch) -> None:
    from training import losses

    out, target = torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.0])
    assert losses.paired_loss("l1", out, target).item() == pytest.approx(0.75)
    assert losses.paired_loss("mse", out, target).item() == pytest.approx(0.625)
    with pytest.raises(SystemExit, match="paired_loss must be l1 or mse"):
        parse_args(["--paired-loss", "l2"])
    seen: list[str] = []

    def spy(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(kind)
        return torch.nn.functional.mse_loss(output, target) if kind == "mse" else output.sum() * 0

    monkeypatch.setattr(losses, "paired_loss", spy)
    for kind, phase in (("mse", dict(pretrain_steps=1, steps=0)), ("l1", dict(steps=1, paired_weight=1.0))):
        cfg = _cfg(domains, tmp_path / kind, paired_folders=True, paired_loss=kind, **phase)
        fit.Trainer(cfg, load_training_data(cfg)).step()
    assert seen == ["mse", "l1"]


def test_folder_run_with_paired_validation(domains: str, tmp_path: Path) -> None:
    noisy = _write_domain(tmp_path / "val_noisy", 2, 0.5, 5, size=64)
    ref = _write_domain(tmp_path / "val_ref", 2, 0.05, 5, size=64)
    cfg = _cfg(domains, tmp_path / "run", steps=2, val_every=2, val_pairs=f"{noisy},{ref}")
    data = load_training_data(cfg)
    assert [v.name for v in data.val] == ["val0", "val1"]
    fit.run(cfg)
    header, row = [r.split(",") for r in (tmp_path / "run" / "val.csv").read_text().splitlines()]
    assert float(row[header.index("psnr")]) > float(row[header.index("raw_psnr")]) - 20
    assert float(row[header.index("profile_change")]) >= 0
    with pytest.raises(DataError, match="1 reference"):
        _write_domain(tmp_path / "one", 1, 0.05, 5, size=64)
        load_training_data(_cfg(domains, tmp_path / "r2", val_pairs=f"{noisy},{tmp_path / 'one'}"))


def test_paired_folders_train_supervised_on_float_targets(tmp_path: Path) -> None:
    """--paired-folders: inputs and targets matched in name order, float targets in the inputs' units."""
    import tifffile

    noisy = _write_domain(tmp_path / "noisy", 3, 0.5, 7)
    target_dir = tmp_path / "targets"
    target_dir.mkdir()
    inputs = read_folder(noisy)
    for i, x in enumerate(inputs):  # e.g. a teacher's output: float, 0-255 like its uint8 input
        tifffile.imwrite(target_dir / f"b{i}.tif", (x.astype(np.float32) * 0.5 + 20.25))
    cfg = _cfg(f"{noisy},{target_dir}", tmp_path / "run", paired_folders=True, pretrain_steps=2, steps=0,
               pretrain_gh=False)
    data = load_training_data(cfg)
    assert data.description["paired"] is True and data.sampler.targets is not None
    np.testing.assert_allclose(data.sampler.targets[1] * 255, inputs[1] * 0.5 + 20.25, rtol=1e-5)
    x, y = data.sampler.paired_batch(np.random.default_rng(0), 4)
    np.testing.assert_allclose(y, x * 0.5 + 20.25 / 255, atol=1e-5)  # same window of each pair
    fit.run(cfg)
    assert (tmp_path / "run" / "last").is_dir()
    short = tmp_path / "short"
    short.mkdir()
    tifffile.imwrite(short / "b0.tif", inputs[0].astype(np.float32))
    with pytest.raises(DataError, match="--paired-folders: 3 inputs"):
        load_training_data(_cfg(f"{noisy},{short}", tmp_path / "r2", paired_folders=True))


def test_device_and_amp_precision_come_from_the_core(domains: str, tmp_path: Path, monkeypatch) -> None:
    """--device resolves through napari_hdcyclegan.devices; --amp is bf16 on a CPU, float32 without it."""
    from napari_hdcyclegan import devices

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)  # bf16 under --amp all the same
    cfg = _cfg(domains, tmp_path / "run", device="cpu", amp=True)
    trainer = fit.Trainer(cfg, load_training_data(cfg))
    assert trainer.device == torch.device("cpu")
    with trainer._autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    cfg = _cfg(domains, tmp_path / "run", device="cpu", amp=False)
    trainer = fit.Trainer(cfg, load_training_data(cfg))  # the autocast dtype is resolved once, at construction
    with trainer._autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(SystemExit, match="unknown device"):
        fit.run(_cfg(domains, tmp_path / "bad", device="gpu7"))
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_lateral_mean_loss_ignores_lateral_smoothing_and_sees_a_flattened_line() -> None:
    from training import losses

    torch.manual_seed(0)
    clean = torch.zeros(1, 1, 32, 64)
    clean[..., 10, :] = 1.0  # a thin bright line
    noisy = clean + 0.3 * torch.randn_like(clean)
    smoothed = noisy.reshape(1, 1, 32, 2, 32).mean(-1, keepdim=True).expand(1, 1, 32, 2, 32).reshape(1, 1, 32, 64)
    assert losses.lateral_mean_loss(smoothed, noisy).item() == pytest.approx(0.0, abs=1e-12)
    flattened = clean.clone()
    flattened[..., 9:12, :] = 1 / 3  # the line's energy spread over three rows
    assert losses.lateral_mean_loss(flattened, noisy).item() > 5 * losses.lateral_mean_loss(clean, noisy).item()
    assert losses.lateral_mean_loss(clean, noisy, width=1000).item() >= 0  # wider than the crop: one window


def test_mean_weight_option_reaches_the_supervised_step(tmp_path: Path, monkeypatch) -> None:
    from training import losses

    rng = np.random.default_rng(0)
    for name, level in (("hn", 200), ("ln", 50)):  # bright inputs, dark targets: the anchor's mean tells them apart
        (tmp_path / name).mkdir()
        for i in range(4):
            im = np.clip(level + rng.normal(0, 10, (40, 40)), 0, 255).astype(np.uint8)
            io.imsave(tmp_path / name / f"b{i}.png", im, check_contrast=False)
    domains = f"{tmp_path / 'hn'},{tmp_path / 'ln'}"

    with pytest.raises(SystemExit, match="mean_weight must be"):
        parse_args(["--mean-weight", "-1"])
    with pytest.raises(SystemExit, match="mean_anchor must be"):
        parse_args(["--mean-anchor", "average"])
    seen: list[tuple[int, float]] = []

    def spy(output: torch.Tensor, anchor: torch.Tensor, width: int = 32) -> torch.Tensor:
        seen.append((width, float(anchor.mean())))
        return output.sum() * 0

    monkeypatch.setattr(losses, "lateral_mean_loss", spy)
    for weight, anchor in ((0.0, "input"), (2.0, "input"), (2.0, "target")):
        cfg = _cfg(domains, tmp_path / f"{weight}{anchor}", paired_folders=True, pretrain_steps=1, steps=0,
                   mean_weight=weight, mean_width=16, mean_anchor=anchor)
        fit.Trainer(cfg, load_training_data(cfg)).step()
    assert [w for w, _ in seen] == [16, 16]
    for bad in (dict(paired_folders=False, pretrain_steps=1), dict(paired_folders=True, pretrain_steps=0)):
        cfg = _cfg(domains, tmp_path / "bad", mean_weight=1.0, **bad)
        with pytest.raises(SystemExit, match="mean-weight needs paired data"):
            fit.Trainer(cfg, load_training_data(cfg))
    assert seen[0][1] > 0.7 and seen[1][1] < 0.3  # the inputs, then the targets


def test_drop_rows_after_keeps_the_header_and_the_rows_up_to_the_step(tmp_path: Path) -> None:
    from training.csvlog import append_csv, drop_rows_after

    path = tmp_path / "val.csv"
    for step in (25, 50, 75):
        append_csv(path, {"step": step, "psnr": 20.0 + step}, ("step", "psnr"))
    assert drop_rows_after(path, 75) == 0 and drop_rows_after(tmp_path / "absent.csv", 1) == 0
    assert drop_rows_after(path, 50) == 1
    assert path.read_text().splitlines() == ["step,psnr", "25,45.0", "50,70.0"]
    assert not list(tmp_path.glob("*.tmp"))
    with path.open("a") as fh:
        fh.write("1")  # killed while writing step 100's row: "1" of "100,..." is not step 1
    assert drop_rows_after(path, 50) == 1
    assert path.read_text().splitlines() == ["step,psnr", "25,45.0", "50,70.0"]


def test_append_csv_keeps_an_existing_files_header(tmp_path: Path) -> None:
    from training.csvlog import append_csv

    path = tmp_path / "val.csv"
    append_csv(path, {"step": 1, "psnr": 20.0}, ("step", "psnr"))
    newer = {"step": 2, "psnr": 21.0, "profile_change": 0.5}
    append_csv(path, newer, ("step", "psnr", "profile_change"))
    assert path.read_text().splitlines() == ["step,psnr", "1,20.0", "2,21.0"]
    append_csv(tmp_path / "new.csv", newer, ("step", "psnr", "profile_change"))
    assert (tmp_path / "new.csv").read_text().splitlines()[0] == "step,psnr,profile_change"


@pytest.mark.parametrize(("extra", "message"), [
    (["--n2n-consistency", "-1"], "n2n_consistency must be >= 0"),
    (["--n2n-consistency", "2"], "n2n_consistency needs --n2n-weight"),
    (["--n2n-weight", "1", "--n2n-consistency", "2", "--n2n-extra-noise", "1"], "cannot be combined"),
])
def test_consistency_term_options_are_checked(extra: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(["--data", "real", *extra])


def test_consistency_term_needs_real_data() -> None:
    with pytest.raises(SystemExit, match="need --data real"):
        parse_args(["--data", "sim", "--n2n-weight", "1", "--n2n-consistency", "2"])


@pytest.mark.parametrize(("extra", "message"), [
    (["--n2n-gap", "2"], "column gap must be odd"),
    (["--n2n-gap", "0"], "column gap must be odd"),
    (["--n2n-gap", "11"], "column gap must be odd, from 1 to 9"),
    (["--n2n-gap", "3", "--teacher", "T", "--teacher-weight", "1"], "cannot be combined with teacher"),
    (["--n2n-gap", "3", "--blind-spot-weight", "1"], "cannot be combined with teacher, blind_spot"),
    (["--n2n-gap", "3", "--n2n-extra-noise", "1"], "cannot be combined with .*n2n_extra_noise"),
])
def test_column_gap_is_checked(extra: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(["--data", "real", "--n2n-weight", "1", *extra])


def test_column_gap_needs_real_data_and_reaches_the_config() -> None:
    with pytest.raises(SystemExit, match="need --data real"):
        parse_args(["--data", "sim", "--n2n-weight", "1", "--n2n-gap", "3"])
    assert parse_args(["--data", "real", "--n2n-weight", "1", "--n2n-gap", "3"])[0].n2n_gap == 3
    with pytest.raises(SystemExit, match="n2n_gap needs --n2n-weight"):
        parse_args(["--data", "real", "--n2n-gap", "3"])


def test_ctrl_c_says_how_to_go_on_without_a_traceback(tmp_path: Path, monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "run", interrupted)
    assert fit.main(["--out", str(tmp_path / "run"), "--threads", "1"]) == 130
    err = capsys.readouterr().err
    assert "--resume` continues from the last checkpoint" in err and "Traceback" not in err


def test_a_full_disk_while_saving_is_one_line_that_names_it(tmp_path: Path, monkeypatch, capsys) -> None:
    from types import SimpleNamespace

    def failed_save(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 351616 vs 351568")

    monkeypatch.setattr(fit, "run", failed_save)
    monkeypatch.setattr(fit.shutil, "disk_usage", lambda path: SimpleNamespace(free=10**6))
    assert fit.main(["--out", str(tmp_path / "run"), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full (1 MB free)" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(fit.shutil, "disk_usage", lambda path: SimpleNamespace(free=10**11))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with room on the disk it is a bug: traceback
        fit.main(["--out", str(tmp_path / "run"), "--threads", "1"])


def test_help_explains_every_flag(capsys) -> None:
    from dataclasses import fields

    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps the help text, also at hyphens
    for f in fields(FitConfig):
        said = "".join(f.metadata["help"].split())
        assert len(said) > 10 and said in text, f.name
    assert "Neighbor2Neighbor'sconsistencyterm" in text and "(default'sim')" in text
