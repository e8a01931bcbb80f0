"""Read a training run while it grows: log.csv / val.csv rows, checkpoint steps, a preview of G_L,
and ``loss.png`` (:func:`plot_curves`) drawn from them.

Rows are read incrementally (only complete lines; a half-written last line waits for the next
read), so a widget can poll every fraction of a second without re-reading the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import cast

import numpy as np

#: Loss columns of log.csv plotted as "losses"; discriminator class probabilities (gan steps).
LOSS_KEYS = ("loss_G", "loss_gan", "loss_cycle", "loss_D", "loss_pretrain")
PROB_KEYS = ("d_real_h", "d_real_l", "d_fake")
VAL_KEYS = ("psnr", "ssim")


def checkpoint_folder(out: str | os.PathLike, name: str) -> Path | None:
    """``OUT/name`` (or ``OUT/name.old`` when a kill fell between the renames of a save), or None."""
    for candidate in (Path(out) / name, Path(out) / f"{name}.old"):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def checkpoint_step(folder: str | os.PathLike | None) -> int | None:
    """The global step recorded in a checkpoint's config.json, or None."""
    if folder is None:
        return None
    try:
        data = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        return int(data["provenance"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def truncate_log(path: Path, step: int) -> int:
    """Drop rows after ``step`` (and a half-written last line); returns the rows kept."""
    if not path.exists():
        return 0
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    if not lines:
        return 0
    header, rows = lines[0], [ln for ln in lines[1:] if (s := _row_step(ln)) is not None and s <= step]
    path.write_text(header + "".join(rows))
    return len(rows)


def _row_step(line: str) -> int | None:
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return None


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


class CsvTail:
    """New complete rows of a CSV file that is being appended to."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.offset = 0
        self.header: list[str] | None = None

    def read(self) -> list[dict[str, str]]:
        """Rows appended since the last call (all rows after the file was replaced or truncated)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:
            self.offset, self.header = 0, None
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return []
        self.offset += end
        lines = chunk[:end].decode("utf-8", errors="replace").splitlines()
        if self.header is None:
            self.header, lines = next(csv.reader([lines[0]])), lines[1:]
        return [dict(zip(self.header, row)) for row in csv.reader(io.StringIO("\n".join(lines))) if row]


class RunLog:
    """Columns of ``OUT/log.csv`` and ``OUT/val.csv`` as float arrays, refreshed by :meth:`update`."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.tails = {"log": CsvTail(self.out / "log.csv"), "val": CsvTail(self.out / "val.csv")}
        self.rows: dict[str, dict[int, dict[str, str]]] = {"log": {}, "val": {}}

    def update(self) -> bool:
        """Read what the run appended; True when there is something new."""
        new = False
        for kind, tail in self.tails.items():
            for row in tail.read():
                step = _number(row.get("step"))
                if not math.isnan(step):
                    self.rows[kind][int(step)] = row  # a resumed run overwrites rows it repeats
                    new = True
        return new

    @property
    def last_step(self) -> int:
        """The last logged training step (0 before the first)."""
        return max(self.rows["log"], default=0)

    def series(self, key: str, kind: str = "log") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of column ``key`` where it has a value."""
        steps = sorted(self.rows[kind])
        values = np.array([_number(self.rows[kind][s].get(key)) for s in steps], dtype=float)
        keep = ~np.isnan(values)
        return np.asarray(steps, dtype=float)[keep], values[keep]


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (same length; the first points average what exists)."""
    if window <= 1 or len(values) == 0:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def preview_bscan(model_dir: str | os.PathLike, bscan: np.ndarray, device: str = "cpu") -> np.ndarray:
    """G_L of a (training) checkpoint applied to one b-scan with the model's intensity pipeline."""
    from napari_hdcyclegan.engine import Denoiser
    from napari_hdcyclegan.model.checkpoint import load_model
    from napari_hdcyclegan.model.networks import Generator

    nets, config = load_model(model_dir, parts=("G_L",))
    return Denoiser(cast(Generator, nets["G_L"]), config, device, trained=True).denoise(bscan)


def plot_curves(out: Path) -> None:
    """``OUT/loss.png``: training losses and validation scores against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log, val = out / "log.csv", out / "val.csv"
    if not log.exists():
        return
    rows = list(csv.DictReader(log.open()))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss_pretrain", "loss_gan", "loss_cycle", "loss_D", "loss_paired", "loss_n2n"):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in ("", None)]
        if pts:
            xs, ys = zip(*pts)
            k = max(1, len(ys) // 200)
            axes[0].plot(xs[::k], np.convolve(ys, np.ones(k) / k, mode="same")[::k], label=key)
    axes[0].set_xlabel("step"), axes[0].set_yscale("log"), axes[0].legend(), axes[0].set_title("losses")
    if val.exists():
        vrows = list(csv.DictReader(val.open()))
        if vrows:
            val_steps = [int(r["step"]) for r in vrows]
            for key in ("psnr", "bm3d_psnr", "split_psnr", "raw_split_psnr"):
                axes[1].plot(val_steps, [float(r[key]) if r.get(key) else np.nan for r in vrows], label=key)
            ax2 = axes[1].twinx()
            for key, style in (("ssim", "g-"), ("bm3d_ssim", "g--")):
                ax2.plot(val_steps, [float(r[key]) if r.get(key) else np.nan for r in vrows], style, label=key)
            axes[1].legend(loc="lower left"), ax2.legend(loc="lower right")
            axes[1].set_title("validation (PSNR left, SSIM right)"), axes[1].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=90)
    plt.close(fig)
