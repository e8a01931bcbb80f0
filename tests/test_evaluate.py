"""End-to-end test of ``python -m training.evaluate`` on tiny simulated pairs and folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from training import evaluate


def _table(path: Path) -> dict[str, dict]:
    with open(path) as fh:
        return {row["method"]: row for row in csv.DictReader(fh)}


def test_evaluate_sim_end_to_end(tmp_path, tiny_model, capsys):
    out = tmp_path / "out"
    rc = evaluate.main(["--data", "sim", "--n", "2", "--shape", "160", "128", "--weights",
                        str(tiny_model), "--methods", "model", "median", "wavelet",
                        "--out", str(out), "--device", "cpu"])
    assert rc == 0
    table = _table(out / "table.csv")
    assert list(table) == ["raw", "HDcycleGAN", "median", "wavelet"]
    for row in table.values():
        assert int(row["n"]) == 2
        assert np.isfinite(float(row["PSNR_mean"])) and 0 <= float(row["SSIM_mean"]) <= 1
    assert float(table["wavelet"]["PSNR_mean"]) > float(table["raw"]["PSNR_mean"])
    assert float(table["median"]["sec_per_bscan"]) > 0
    assert float(table["raw"]["profile_change_mean"]) == 0.0  # the input does not change its own profile
    assert float(table["median"]["profile_change_mean"]) > 0
    md = (out / "table.md").read_text()
    assert "| method | CNR |" in md and "wavelet" in md and "± " in md and "profile change" in md
    assert (out / "examples.png").stat().st_size > 1000
    assert len(list(csv.DictReader(open(out / "scores.csv")))) == 2 * 4
    assert "registration off" in capsys.readouterr().out  # clean truth: no registration


def test_evaluate_folders_and_untrained_label(tmp_path, monkeypatch):
    import tifffile

    rng = np.random.default_rng(0)
    hn_dir, ln_dir = tmp_path / "hn", tmp_path / "ln"
    hn_dir.mkdir(), ln_dir.mkdir()
    for i in range(2):
        ln = np.full((96, 128), 20.0)
        ln[30:40] = 200
        ln[40:60] = 110
        ln[60:68] = 230
        hn = np.clip(ln + rng.normal(0, 30, ln.shape), 0, 255)
        tifffile.imwrite(hn_dir / f"b{i}.tif", hn.astype(np.uint8))
        tifffile.imwrite(ln_dir / f"b{i}.tif", ln.astype(np.uint8))

    class FakeDenoiser:  # stands in for the untrained fallback without building the paper-size net
        trained, name, device = False, "untrained", "cpu"

        @staticmethod
        def denoise(x):
            return x

    from napari_hdcyclegan import engine

    monkeypatch.setattr(engine, "get_denoiser", lambda *a, **k: FakeDenoiser())
    out = tmp_path / "out"
    rc = evaluate.main(["--data", f"{hn_dir},{ln_dir}", "--methods", "model", "median",
                        "--out", str(out)])
    assert rc == 0
    table = _table(out / "table.csv")
    assert "HDcycleGAN (untrained)" in table
    assert "UNTRAINED" in (out / "table.md").read_text()
    # The identity "model" scores exactly like the raw input.
    assert table["HDcycleGAN (untrained)"]["PSNR_mean"] == table["raw"]["PSNR_mean"]


def test_shrunk_pairs_resize_both_alike_and_keep_the_dtype(tmp_path, capsys):
    from training.data import shrunk_pairs

    rng = np.random.default_rng(1)
    ref = np.zeros((96, 128), np.uint8)
    ref[40:60] = 200
    noisy = np.clip(ref + rng.normal(0, 40, ref.shape), 0, 255).astype(np.uint8)
    [(name, x, r)] = shrunk_pairs([("b0", noisy, ref)], 2, 1)
    assert name == "b0" and x.shape == r.shape == (48, 128) and x.dtype == r.dtype == np.uint8
    assert r[21:29].min() == 200 and r[:15].max() == 0  # the band moves with the rows, levels kept
    assert x.astype(float).std() < noisy.astype(float).std()  # anti-aliased: rows averaged, noise lower
    [(_, x2, _)] = shrunk_pairs([("b0", noisy, ref)], 2, 2)
    assert x2.shape == (48, 64)
    for bad in ("0.5", "2,2,2", "x"):
        assert evaluate.main(["--data", "sim", "--n", "1", "--shrink", bad, "--out", str(tmp_path)]) == 2
        assert "--shrink" in capsys.readouterr().err


def test_load_folders_errors(tmp_path):
    (tmp_path / "hn").mkdir()
    (tmp_path / "ln").mkdir()
    with pytest.raises(ValueError, match="no images"):
        evaluate.load_folders(tmp_path / "hn", tmp_path / "ln")
    with pytest.raises(ValueError, match="not a folder"):
        evaluate.load_folders(tmp_path / "missing", tmp_path / "ln")
    assert evaluate.main(["--data", "nonsense"]) == 2


def test_duke_split_excludes_test_from_tuning():
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "paired"
    if not root.is_dir():
        pytest.skip("shared Duke data not present")
    from training.tune_baselines import tuning_pairs

    names = [n for n, _, _ in tuning_pairs(str(root))]
    assert len(names) == 11 and not any(n.startswith(("S06", "S07", "S08", "S09")) for n in names)
    from training.data import duke_pairs

    test = [n for n, _, _ in duke_pairs("test", root)]
    assert [n.split("/")[0] for n in test] == ["S06", "S07", "S08", "S09"]


def test_auto_model_loads_only_the_models_it_uses(tmp_path, tiny_model, monkeypatch):
    """Under "auto" the label comes from the model chosen for the first b-scan: the averaged-scan
    model is not loaded just to name the method."""
    from napari_hdcyclegan import engine
    from napari_hdcyclegan.model import choice

    monkeypatch.setattr(choice, "choose_model", lambda data: choice.ModelChoice(str(tiny_model), 15.0, "test"))
    engine.release()
    loaded: list[str] = []
    real_load = engine._load
    monkeypatch.setattr(engine, "_load", lambda w, d: loaded.append(str(w)) or real_load(w, d))
    x = np.random.default_rng(0).random((32, 48), dtype=np.float32)
    label, fn, info = evaluate.model_method("auto", "cpu", x)
    assert fn(x).shape == x.shape
    assert loaded == [str(tiny_model)]
    assert label == "HDcycleGAN" and info["name"] == "auto: tiny" and info["trained"] and info["device"] == "cpu"


def test_auto_label_names_only_the_models_of_evaluated_bscans(tmp_path, tiny_model, monkeypatch):
    """run_methods first calls every method on a small crop (imports, allocations); under "auto" the
    model chosen for that crop is not one the evaluation used."""
    from napari_hdcyclegan import engine
    from napari_hdcyclegan.model import Generator, ModelConfig, choice
    from napari_hdcyclegan.model.checkpoint import save_model

    other = save_model(tmp_path / "other", {"G_L": Generator(width=4)},
                       ModelConfig(generator_width=4, discriminator_width=4, discriminator_levels=3,
                                   name="other", trained=True))

    def pick(data):
        small = max(np.shape(data)) <= evaluate.WARMUP_PX
        return choice.ModelChoice(str(other if small else tiny_model), 20.0, "test")

    monkeypatch.setattr(choice, "choose_model", pick)
    engine.release()
    rng = np.random.default_rng(0)
    ref = np.zeros((64, 80), np.float32)
    ref[20:40] = 0.7
    noisy = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1).astype(np.float32)
    label, fn, info = evaluate.model_method("auto", "cpu", noisy)
    evaluate.run_methods([("a", noisy, ref)], {label: fn}, align=False, log=lambda _: None)
    assert info["name"] == "auto: tiny"
