"""TrainWidget under Xvfb with a tiny model: trains, plots, previews, stops, resumes, exports; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import speckled_domain as _domain

from napari_hdcyclegan.model import registry
from training.runlog import checkpoint_folder, checkpoint_step

TIMEOUT_MS = 60_000
#: Tiny settings: width 4, one residual block, 32-pixel crops, checkpoint (and preview) every 4 steps.
TINY_EXTRA = {"n_res": 1, "d_width": 4, "threads": 1}


@pytest.fixture
def setup(make_napari_viewer, tmp_path, monkeypatch):
    """A viewer with HN and LN volume layers and a TrainWidget set to a tiny CPU run."""
    monkeypatch.setenv(registry.USER_DIR_ENV, str(tmp_path / "user"))
    from napari_hdcyclegan._widgets.train import SCRATCH, TrainWidget

    viewer = make_napari_viewer()
    hn = viewer.add_image(_domain(0, 0.5), name="hn", scale=(10.0, 3.9, 11.5))
    ln = viewer.add_image(_domain(1, 0.15), name="ln")
    widget = TrainWidget(viewer)
    widget.hn_layer.value, widget.ln_layer.value, widget.preview_layer.value = hn, ln, hn
    widget.weights_combo.value = SCRATCH
    widget.device_combo.value = "cpu"
    widget.crop_spin.value, widget.batch_spin.value, widget.width_spin.value = 32, 2, 4
    widget.every_spin.value = 4
    widget.name_edit.value = "mine"
    yield viewer, widget
    widget.stop()


def _start(qtbot, widget, steps: int) -> None:
    widget.steps_spin.value = steps
    assert widget.start(TINY_EXTRA) is not None
    qtbot.waitUntil(lambda: widget.job is not None and widget.prepare is None, timeout=TIMEOUT_MS)


def _last_ckpt(widget) -> int:
    return checkpoint_step(checkpoint_folder(widget.job.out, "last")) or 0


def test_trains_plots_previews_and_exports_to_every_chooser(qtbot, setup, tiny_model):
    from napari_hdcyclegan._widgets.denoise import DenoiseWidget

    viewer, widget = setup
    denoise = DenoiseWidget(viewer)  # already open: must see the new model at once
    _start(qtbot, widget, 8)
    qtbot.waitUntil(lambda: widget.job.state == "finished", timeout=TIMEOUT_MS)
    assert "Finished at step 8" in widget.status.value
    curves = widget.plots.curve_keys()
    assert {"loss_G", "loss_cycle", "loss_D"} <= set(curves["loss"])
    from training.fit import LOG_FIELDS

    if "d_real_h" in LOG_FIELDS:  # the discriminator diagnostics of training.fit
        assert {"real HN", "real LN", "fake"} <= set(curves["prob"])
    qtbot.waitUntil(lambda: "hn_train_preview" in viewer.layers, timeout=TIMEOUT_MS)
    preview = viewer.layers["hn_train_preview"]
    assert preview.data.shape == (1, 40, 40) and preview.data.dtype == np.uint8
    assert preview.scale[0] == 10.0 and preview.metadata["train_step"] in (4, 8)

    assert widget.export_button.enabled
    target = widget.export()
    assert target == registry.user_models_dir() / "mine" and (target / "MODEL_CARD.md").exists()
    assert "mine" in denoise.weights_combo.choices
    assert "mine" in widget.weights_combo.choices
    denoise.weights_combo.value = "mine"
    widget.export()  # the name is taken now
    assert "exists already" in widget.status.value


def test_stop_keeps_checkpoint_and_resume_continues(qtbot, setup):
    viewer, widget = setup
    _start(qtbot, widget, 400)
    qtbot.waitUntil(lambda: _last_ckpt(widget) >= 4, timeout=TIMEOUT_MS)
    widget.stop_button.clicked.emit()
    assert widget.job.state == "stopped" and "Stopped" in widget.status.value
    stopped_at = _last_ckpt(widget)
    assert widget.resume_button.enabled and widget.start_button.enabled
    widget.resume_button.clicked.emit()
    assert widget.job.state == "running" and widget.stop_button.enabled
    qtbot.waitUntil(lambda: widget.run_log.last_step > stopped_at + 2, timeout=TIMEOUT_MS)
    steps = sorted(widget.run_log.rows["log"])
    assert steps == list(range(1, len(steps) + 1))
    widget.stop()
    assert widget.job.state == "stopped"


def test_no_ln_data_gets_a_message(qtbot, setup):
    viewer, widget = setup
    widget.ln_layer.value = None
    assert widget.start(TINY_EXTRA) is not None
    qtbot.waitUntil(lambda: widget.prepare is None, timeout=TIMEOUT_MS)
    assert "no LN (low-noise) data" in widget.status.value
    assert widget.job is None and widget.start_button.enabled


def test_mismatched_dtype_gets_a_message(qtbot, setup):
    viewer, widget = setup
    widget.ln_layer.value = viewer.add_image(_domain(1, 0.15).astype(np.uint16), name="ln16")
    assert widget.start(TINY_EXTRA) is not None
    qtbot.waitUntil(lambda: widget.prepare is None, timeout=TIMEOUT_MS)
    assert "uint8 but LN data is uint16" in widget.status.value and widget.job is None


def test_a_crash_while_preparing_is_notified_once(qtbot, setup, monkeypatch):
    from napari_hdcyclegan._widgets import train

    def crash(*args):
        raise RuntimeError("disk on fire")

    shown: list[str] = []
    monkeypatch.setattr(train, "prepare_run", crash)
    monkeypatch.setattr(train, "show_error", shown.append)
    viewer, widget = setup
    with qtbot.capture_exceptions() as relayed:  # what napari's notification manager would show
        assert widget.start(TINY_EXTRA) is not None
        qtbot.waitUntil(lambda: widget.prepare is None, timeout=TIMEOUT_MS)
    assert [str(e[1]) for e in relayed] == ["disk on fire"] and shown == []
    assert "disk on fire" in widget.status.value and widget.start_button.enabled


def test_bad_name_and_crashed_run(qtbot, setup):
    viewer, widget = setup
    widget.name_edit.value = "../escape"
    assert widget.start() is None and "model name" in widget.status.value and widget.job is None
    widget.name_edit.value = "mine"
    widget.steps_spin.value = 4
    widget.start({**TINY_EXTRA, "device": "cuda:7"})  # no such device: training.fit dies at start-up
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.state == "failed", timeout=TIMEOUT_MS)
    assert "Training failed (exit status" in widget.status.value
    # the last lines of its output: training.fit's one-line error naming the device
    assert "error: device 'cuda:7'" in widget.status.value
    assert widget.start_button.enabled and not widget.resume_button.enabled


def test_paired_validation_folders_reach_the_run(setup, tmp_path):
    viewer, widget = setup[:2]
    noisy, ref = tmp_path / "val_noisy", tmp_path / "val_ref"
    noisy.mkdir(), ref.mkdir()
    untouched = widget.spec(str(tmp_path / "run"))
    assert (untouched.val_noisy, untouched.val_reference) == ("", "")  # not the working folder
    widget.validation.value = "pairs"
    widget.val_noisy.value, widget.val_reference.value = str(noisy), str(ref)
    spec = widget.spec(str(tmp_path / "run"))
    assert (spec.validation, spec.val_noisy, spec.val_reference) == ("pairs", str(noisy), str(ref))
    widget.val_reference.line_edit.value = ""  # the user clears the field
    assert widget.spec(str(tmp_path / "run")).val_reference == ""


def test_closing_the_dock_stops_the_run(qtbot, setup):
    """The dock's x button unparents the widget without a closeEvent: the run must not go on alone."""
    viewer, widget = setup
    dock = viewer.window.add_dock_widget(widget, name="train")
    _start(qtbot, widget, 100_000)
    qtbot.waitUntil(lambda: _last_ckpt(widget) >= 4, timeout=TIMEOUT_MS)
    viewer.window.remove_dock_widget(dock)
    assert widget.job.proc.poll() is not None and widget.job.state == "stopped"
    assert "dock was closed" in widget.job.reason and widget.job.can_resume()
    assert not widget.timer.isActive()


def test_a_deleted_widget_stops_the_run(qtbot, setup):
    """Closing the viewer deletes its docks, again without a closeEvent."""
    viewer, widget = setup
    viewer.window.add_dock_widget(widget, name="train")
    _start(qtbot, widget, 100_000)
    job = widget.job
    assert job.state == "running"
    widget.deleteLater()
    qtbot.waitUntil(lambda: job.state != "running", timeout=TIMEOUT_MS)
    assert job.proc.poll() is not None and job.state == "stopped" and "napari closed" in job.reason
