"""training.job / runlog / publish: inputs checked, a subprocess run, stop, exact resume, export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import speckled_domain as _domain

from napari_hdcyclegan.model import registry
from napari_hdcyclegan.model.checkpoint import load_model, read_config, resolve_model_dir
from training.job import (
    EXIT_WITH_PARENT,
    JobError,
    JobSpec,
    TrainingJob,
    check_domains,
    fit_config,
    prepare_data,
    read_folder_images,
    write_config,
)
from training.publish import ExportError, export_run
from training.runlog import CsvTail, RunLog, checkpoint_folder, checkpoint_step, smooth, truncate_log

TINY = dict(width=4, n_res=1, crop=32, batch=2, threads=1, ckpt_every=4, val_every=1000)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.USER_DIR_ENV, str(tmp_path / "user"))
    return tmp_path / "user"


def _spec(tmp_path: Path, steps: int, **kw) -> JobSpec:
    spec = JobSpec(out=str(tmp_path / "run"), name="mine", steps=steps, device="cpu", **{**TINY, **kw})
    prepare_data(spec, [_domain(0, 0.5)], [_domain(1, 0.15)])
    return spec


def _wait(cond, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.1)


def test_fit_config_scratch_and_finetune(tmp_path, tiny_model):
    scratch = fit_config(JobSpec(out=str(tmp_path), name="a", width=8))
    assert scratch["width"] == scratch["d_width"] == 8 and scratch["residual"] and "init_from" not in scratch
    assert scratch["data"].split(",") == [str((tmp_path / "data" / d).resolve()) for d in ("hn", "ln")]
    tuned = fit_config(JobSpec(out=str(tmp_path), name="a", width=8, init_from=str(tiny_model)))
    assert tuned["width"] == 4 and tuned["residual"] is False and tuned["init_from"] == str(tiny_model.resolve())
    assert tuned["normalisation"] == "percentile"  # the tiny model's, not the scratch default
    assert tuned["lateral_sigma"] == 0.0 and "lateral_sigma" not in scratch
    smoothed = fit_config(JobSpec(out=str(tmp_path), name="a", init_from="spectralis-real"))
    shipped = read_config(resolve_model_dir("spectralis-real")).lateral_sigma
    assert smoothed["lateral_sigma"] == shipped > 0  # a fine-tuned shipped model keeps its smoothing
    assert fit_config(JobSpec(out=str(tmp_path), name="a", validation="sim"))["sim_val_n"] == 4
    with pytest.raises(JobError):
        fit_config(JobSpec(out=str(tmp_path), name="a", validation="paired"))


def test_fit_config_paired_validation_folders(tmp_path):
    noisy, ref = tmp_path / "vn", tmp_path / "vr"
    noisy.mkdir(), ref.mkdir()
    cfg = fit_config(JobSpec(out=str(tmp_path), name="a", validation="pairs", val_noisy=str(noisy),
                             val_reference=str(ref)))
    assert cfg["val_pairs"] == f"{noisy.resolve()},{ref.resolve()}" and cfg["sim_val_n"] == 0
    with pytest.raises(JobError, match="folder of noisy b-scans and a folder of their references"):
        fit_config(JobSpec(out=str(tmp_path), name="a", validation="pairs", val_noisy=str(noisy)))


@pytest.mark.parametrize("hn, ln, message", [
    ([np.zeros((40, 40), np.uint8)], [], "no LN"),
    ([], [np.zeros((40, 40), np.uint8)], "no HN"),
    ([np.zeros((40, 40), np.uint8)], [np.zeros((40, 40), np.uint16)], "uint8 but LN data is uint16"),
    ([np.zeros((20, 40), np.uint8)], [np.zeros((40, 40), np.uint8)], "smaller than the crop"),
    ([np.zeros((40, 40), np.uint8), np.zeros((40, 48), np.uint8)], [np.zeros((40, 40), np.uint8)], "mixed shapes"),
    ([np.zeros((40, 40), bool)], [np.zeros((40, 40), bool)], "numeric"),
])
def test_bad_inputs_say_why(hn, ln, message):
    with pytest.raises(JobError, match=message):
        check_domains(hn, ln, 32)


def test_prepare_data_and_folders(tmp_path):
    spec = _spec(tmp_path, 1)
    assert tifffile.imread(spec.hn_dir() / "bscans.tif").shape == (3, 40, 40)
    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", _domain(2, 0.3, n=2))
    from skimage import io

    io.imsave(folder / "b.png", _domain(3, 0.3, n=1)[0], check_contrast=False)
    (folder / "notes.txt").write_text("not an image")
    arrays = read_folder_images(folder)
    assert [a.shape for a in arrays] == [(2, 40, 40), (40, 40)]
    with pytest.raises(JobError, match="not a folder"):
        read_folder_images(tmp_path / "missing")


def test_csv_tail_reads_complete_rows_only(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,loss_G\n1,0.5\n2,0.4")
    tail = CsvTail(path)
    assert [r["step"] for r in tail.read()] == ["1"]
    with path.open("a") as fh:
        fh.write("\n3,0.3\n")
    assert [r["step"] for r in tail.read()] == ["2", "3"]
    assert truncate_log(path, 2) == 2
    assert path.read_text() == "step,loss_G\n1,0.5\n2,0.4\n"
    run = RunLog(tmp_path)
    assert run.update() and run.last_step == 2
    steps, values = run.series("loss_G")
    np.testing.assert_allclose(values, [0.5, 0.4])
    np.testing.assert_allclose(smooth(np.array([1.0, 3.0, 5.0]), 2), [1.0, 2.0, 4.0])


def test_job_runs_stops_resumes_and_exports(tmp_path, user_dir):
    spec = _spec(tmp_path, 400)
    job = TrainingJob(spec)
    job.start()
    _wait(lambda: (checkpoint_step(checkpoint_folder(spec.out, "last")) or 0) >= 8)
    job.stop()
    assert job.state == "stopped" and job.can_resume()
    stopped_at = checkpoint_step(checkpoint_folder(spec.out, "last"))
    job.start(resume=True)
    _wait(lambda: (checkpoint_step(checkpoint_folder(spec.out, "last")) or 0) >= stopped_at + 8)
    job.stop()
    rows = list(csv.DictReader((Path(spec.out) / "log.csv").open()))
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(1, len(steps) + 1))  # one row per step: no gap, no repeat
    assert job.poll() == "stopped"

    model = export_run(spec.out, "mine")
    assert model.parent == registry.user_models_dir()
    assert resolve_model_dir("mine") == model
    nets, config = load_model("mine")
    assert config.name == "mine" and config.trained and set(nets) == {"G_L"}
    card = (model / "MODEL_CARD.md").read_text()
    assert "# mine" in card and "3 high-noise" in card and "last" in card
    assert "hardware: CPU: " in card and "thread(s)" in card  # it said only "device cpu"
    assert "--config fit_config.json --out NEW_RUN" in card  # as written, it refused the original run folder
    assert (model / "fit_config.json").exists()
    with pytest.raises(ExportError, match="exists already"):
        export_run(spec.out, "mine")
    with pytest.raises(ExportError, match="no checkpoint"):
        export_run(tmp_path / "empty", "other")


def test_a_run_ends_when_the_process_that_started_it_goes(tmp_path):
    spec = _spec(tmp_path, 100_000)
    job = TrainingJob(spec)
    job.start()
    _wait(lambda: (checkpoint_step(checkpoint_folder(spec.out, "last")) or 0) >= 4)
    job.proc.stdin.close()  # what the OS does when napari quits or crashes: the pipe's parent end closes
    code = job.proc.wait(timeout=60)
    assert code != 0 and job.state == "running"  # ended on its own: nobody called stop()
    assert checkpoint_step(checkpoint_folder(spec.out, "last")) >= 4  # checkpoints stay, as with Stop
    job.poll()
    assert job.state == "failed" and job.can_resume()


def test_a_run_started_from_a_shell_is_not_watched():
    code = ("import sys, time\nfrom training.job import exit_with_parent\nexit_with_parent()\n"
            "time.sleep(2)\nprint('still running')")
    env = {k: v for k, v in os.environ.items() if k != EXIT_WITH_PARENT}
    done = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert done.returncode == 0 and "still running" in done.stdout, done.stderr  # nohup: stdin at EOF at once


def test_finished_and_failed_runs(tmp_path):
    spec = _spec(tmp_path, 6)
    job = TrainingJob(spec)
    job.start()
    _wait(lambda: job.poll() != "running")
    assert job.state == "finished" and RunLog(spec.out).update()
    bad = JobSpec(out=str(tmp_path / "bad"), name="bad", steps=4, device="cpu", **TINY)
    bad.hn_dir().mkdir(parents=True)  # empty HN folder: training.fit fails on it
    bad.ln_dir().mkdir(parents=True)
    job = TrainingJob(bad)
    job.start()
    _wait(lambda: job.poll() != "running")
    assert job.state == "failed" and "exit status" in job.reason
    assert "no TIFF/PNG/JPEG images" in job.stderr_tail()


def test_stderr_tail_leaves_out_progress_bars(tmp_path):
    job = TrainingJob(JobSpec(out=str(tmp_path), name="x"))
    (tmp_path / "stderr.log").write_text("start\n  1%|▏   | 1/90 [00:01<01:30, 1.0it/s]\r  2%|▎   | 2/90"
                                         " [00:02<01:28, 1.0it/s]\nTraceback\nRuntimeError: boom\n")
    assert job.stderr_tail() == "start\nTraceback\nRuntimeError: boom"


def test_cli_trains_and_exports(tmp_path, user_dir, capsys):
    from training.job import main

    tifffile.imwrite(tmp_path / "hn.tif", _domain(0, 0.5))
    (tmp_path / "ln").mkdir()
    tifffile.imwrite(tmp_path / "ln" / "ln.tif", _domain(1, 0.15))
    rc = main(["--hn", str(tmp_path / "hn.tif"), "--ln", str(tmp_path / "ln"), "--name", "cli", "--width", "4",
               "--crop", "32", "--batch", "2", "--steps", "4", "--ckpt-every", "2", "--threads", "1",
               "--device", "cpu", "--out", str(tmp_path / "run")])
    assert rc == 0 and "exported" in capsys.readouterr().out
    assert registry.user_models() == ["cli"]


def test_cli_refuses_a_run_folder_in_use_or_a_bad_name_before_touching_anything(tmp_path, user_dir, capsys):
    from training.job import main

    tifffile.imwrite(tmp_path / "hn.tif", _domain(0, 0.5))
    tifffile.imwrite(tmp_path / "ln.tif", _domain(1, 0.15))
    spec = _spec(tmp_path, 6)
    (Path(spec.out) / "log.csv").write_text("step\n1\n")  # a run was here (killed before its first checkpoint)
    before = {p: p.read_bytes() for p in Path(spec.out).rglob("*") if p.is_file()}
    base = ["--hn", str(tmp_path / "hn.tif"), "--ln", str(tmp_path / "ln.tif"), "--device", "cpu"]
    assert main([*base, "--name", "again", "--out", spec.out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already holds a run (log.csv)" in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in Path(spec.out).rglob("*") if p.is_file()} == before  # nothing rewritten
    assert main([*base, "--name", "bad/name", "--out", str(tmp_path / "new")]) == 2
    assert "model name 'bad/name'" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_cli_exports_the_last_checkpoint_when_the_time_budget_is_spent(tmp_path, user_dir, capsys):
    from training.job import main

    tifffile.imwrite(tmp_path / "hn.tif", _domain(0, 0.5))
    tifffile.imwrite(tmp_path / "ln.tif", _domain(1, 0.15))
    rc = main(["--hn", str(tmp_path / "hn.tif"), "--ln", str(tmp_path / "ln.tif"), "--name", "budget", "--width", "4",
               "--crop", "32", "--batch", "2", "--steps", "100000", "--ckpt-every", "1", "--threads", "1",
               "--device", "cpu", "--minutes", "0.2", "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert rc == 0 and "time budget spent at step" in captured.err and "exported" in captured.out  # was rc 1, no model
    assert registry.user_models() == ["budget"]


def test_cli_resume_goes_on_with_more_steps_and_exports(tmp_path, user_dir, capsys):
    from training.job import main

    tifffile.imwrite(tmp_path / "hn.tif", _domain(0, 0.5))
    tifffile.imwrite(tmp_path / "ln.tif", _domain(1, 0.15))
    run = tmp_path / "run"
    assert main(["--hn", str(tmp_path / "hn.tif"), "--ln", str(tmp_path / "ln.tif"), "--name", "more", "--width", "4",
                 "--n-res", "1", "--seed", "3", "--lr", "1e-4", "--crop", "32", "--batch", "2", "--steps", "4",
                 "--ckpt-every", "2", "--threads", "1", "--device", "cpu", "--out", str(run), "--no-export"]) == 0
    config = json.loads((run / "job.json").read_text())
    assert (config["n_res"], config["seed"], config["lr"]) == (1, 3, 1e-4)
    assert registry.user_models() == [] and checkpoint_step(checkpoint_folder(run, "last")) == 4
    assert main(["--name", "more", "--out", str(run), "--resume", "--steps", "6"]) == 0
    assert "exported" in capsys.readouterr().out and registry.user_models() == ["more"]
    assert checkpoint_step(checkpoint_folder(run, "last")) == 6
    assert json.loads((run / "job.json").read_text())["steps"] == 6
    with open(run / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]


def test_cli_resume_refuses_changes_to_what_is_trained(tmp_path, user_dir, capsys):
    from training.job import main

    spec = _spec(tmp_path, 4)
    job = TrainingJob(spec)
    job.start()
    _wait(lambda: job.poll() != "running")
    before = {p: p.read_bytes() for p in Path(spec.out).glob("*.json")}
    cases = ((["--crop", "64"], "only --steps, --minutes, --device, --threads may change (given: --crop)"),
             (["--lr", "1e-3"], "leave out --hn, --ln and --lr"), (["--hn", "x.tif"], "leave out --hn, --ln and --lr"))
    for extra, message in cases:
        assert main(["--name", "mine", "--out", spec.out, "--resume", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, extra
        assert {p: p.read_bytes() for p in Path(spec.out).glob("*.json")} == before


def test_cli_resume_needs_a_run_with_a_checkpoint_and_new_runs_need_data(tmp_path, user_dir, capsys):
    from training.job import main

    assert main(["--name", "none", "--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "not a training.job run folder" in capsys.readouterr().err
    spec = _spec(tmp_path, 4)
    write_config(spec)  # a run set up but stopped before its first checkpoint
    assert main(["--name", "mine", "--out", spec.out, "--resume"]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert main(["--name", "new", "--out", str(tmp_path / "new")]) == 2
    assert "a new run needs --hn and --ln" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "hn.tif", _domain(0, 0.5))
    assert main(["--name", "new", "--out", str(tmp_path / "new"), "--hn", str(tmp_path / "hn.tif"), "--ln",
                 str(tmp_path / "hn.tif"), "--init-from", "spectralis-real", "--width", "8"]) == 2
    assert "fine-tuning takes the base model's" in capsys.readouterr().err and not (tmp_path / "new").exists()


@pytest.mark.parametrize("flags, said", [(["--validation", "bogus"], "validation must be one of"),
                                         (["--init-from", "no-such-model"], "no such model directory")])
def test_cli_refuses_a_bad_validation_or_base_before_writing_data(tmp_path, user_dir, capsys, flags, said):
    from training.job import main

    tifffile.imwrite(tmp_path / "hn.tif", _domain(0, 0.5), photometric="minisblack")
    rc = main(["--hn", str(tmp_path / "hn.tif"), "--ln", str(tmp_path / "hn.tif"), "--name", "x",
               "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and said in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
