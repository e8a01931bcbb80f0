"""Live plots of a training run (matplotlib in Qt): losses, validation PSNR/SSIM, D class probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

#: Curves drawn with a trailing mean over this many log rows (the raw per-step losses are noisy).
SMOOTH_ROWS = 10
PROB_LABELS = {"d_real_h": "real HN", "d_real_l": "real LN", "d_fake": "fake"}


class TrainPlots(FigureCanvasQTAgg):
    """Three stacked axes redrawn from a :class:`training.runlog.RunLog`."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4.2, 6.0), tight_layout=True)
        super().__init__(self.figure)
        self.ax_loss, self.ax_val, self.ax_prob = self.figure.subplots(3, 1, sharex=True)
        self.ax_ssim = self.ax_val.twinx()
        self.setMinimumHeight(420)
        self.clear()

    def clear(self) -> None:
        """Empty axes with their titles (before a run)."""
        for ax in (self.ax_loss, self.ax_val, self.ax_ssim, self.ax_prob):
            ax.cla()
        self.ax_loss.set_title("losses", fontsize=9)
        self.ax_val.set_title("validation: PSNR (dB, left), SSIM (right)", fontsize=9)
        self.ax_prob.set_title("discriminator: p(correct class)", fontsize=9)
        self.ax_prob.set_xlabel("step", fontsize=8)
        self.draw_idle()

    def update_from(self, run: Any) -> None:
        """Redraw every axis from ``run`` (a RunLog)."""
        from training.runlog import LOSS_KEYS, PROB_KEYS, smooth

        self.clear()
        for key in LOSS_KEYS:
            steps, values = run.series(key)
            if len(values):
                self.ax_loss.plot(steps, smooth(values, SMOOTH_ROWS), label=key, lw=1)
        if self.ax_loss.lines:
            self.ax_loss.set_yscale("log")
            self.ax_loss.legend(fontsize=7, loc="upper right")
        for key, ax, style in (("psnr", self.ax_val, "C0o-"), ("ssim", self.ax_ssim, "C2s-")):
            steps, values = run.series(key, "val")
            if len(values):
                ax.plot(steps, values, style, ms=3, lw=1, label=key)
        for key in PROB_KEYS:
            steps, values = run.series(key)
            if len(values):
                self.ax_prob.plot(steps, smooth(values, SMOOTH_ROWS), label=PROB_LABELS[key], lw=1)
        self.ax_prob.set_ylim(-0.02, 1.02)
        self.ax_prob.axhline(1 / 3, color="gray", lw=0.5, ls=":")  # chance level of 3 classes
        if len(self.ax_prob.lines) > 1:
            self.ax_prob.legend(fontsize=7, loc="lower left")
        self.draw_idle()

    def curve_keys(self) -> dict[str, list[str]]:
        """Labels of the curves drawn per axis (for tests and screenshots)."""
        axes = {"loss": self.ax_loss, "psnr": self.ax_val, "ssim": self.ax_ssim, "prob": self.ax_prob}
        return {name: [ln.get_label() for ln in ax.lines if not ln.get_label().startswith("_")]
                for name, ax in axes.items()}


def last_value(run: Any, key: str, kind: str = "log") -> float:
    """The last logged value of ``key`` (NaN when none)."""
    _, values = run.series(key, kind)
    return float(values[-1]) if len(values) else float(np.nan)
