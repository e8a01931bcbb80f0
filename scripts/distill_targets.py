"""Targets for distilling an ensemble of models into one: the teachers' mean output on training b-scans.

    python scripts/distill_targets.py --teachers DIR1 DIR2 DIR3 --out runs/distill [--split train]
    python -m training.fit --data runs/distill/noisy,runs/distill/targets --paired-folders true \
        --val-pairs runs/distill/val_noisy,runs/distill/val_reference --init-from DIR1 ...

Writes, for every noisy b-scan of a Duke split (``training.data.duke_pairs``, the four extra dt1
frames included), ``noisy/NAME.tif`` (the b-scan as it is) and ``targets/NAME.tif`` (float32, same
grey units): the mean over the teachers and over left-right flips of their generators' outputs,
without the teachers' ``lateral_sigma`` (the student applies its own after the generator). Also
``val_noisy/`` and ``val_reference/`` from the Duke validation split (the averages as recorded),
for ``--val-pairs``. An ensemble beats each of its members, but costs one pass per member; a
student trained on its outputs costs one.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from napari_hdcyclegan.denoiser import Denoiser
from napari_hdcyclegan.intensity import to_unit, unit_range


def ensemble_output(denoisers: Sequence[Denoiser], noisy: np.ndarray) -> np.ndarray:
    """Mean of the teachers' outputs (and of their left-right flipped runs), float32 in ``noisy``'s units."""
    lo, hi = unit_range(noisy, denoisers[0].normalisation)
    unit = to_unit(noisy, lo, hi)  # float in [0, 1]: the teachers return floats, not rounded integers
    outs = []
    for d in denoisers:
        outs.append(d.denoise(unit))
        outs.append(d.denoise(np.ascontiguousarray(unit[:, ::-1]))[:, ::-1])
    return (np.mean(outs, axis=0) * (hi - lo) + lo).astype(np.float32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teachers", nargs="+", required=True, help="model names or directories")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", default="train", choices=("train",),
                   help="Duke split whose noisy b-scans get targets (only train: the others are held out)")
    p.add_argument("--duke-root", default=None)
    a = p.parse_args()

    from napari_hdcyclegan.engine import get_denoiser
    from training.data import duke_pairs

    teachers = [get_denoiser(t, "cpu").with_lateral_sigma(0.0) for t in a.teachers]
    for sub in ("noisy", "targets", "val_noisy", "val_reference"):
        (a.out / sub).mkdir(parents=True, exist_ok=True)
    for name, noisy, _ in duke_pairs(a.split, a.duke_root, extra_frames=True):
        stem = name.replace("/", "_")
        tifffile.imwrite(a.out / "noisy" / f"{stem}.tif", noisy)
        tifffile.imwrite(a.out / "targets" / f"{stem}.tif", ensemble_output(teachers, noisy))
        print(stem, flush=True)
    for name, noisy, average in duke_pairs("val", a.duke_root):
        stem = name.replace("/", "_")
        tifffile.imwrite(a.out / "val_noisy" / f"{stem}.tif", noisy)
        tifffile.imwrite(a.out / "val_reference" / f"{stem}.tif", average)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
