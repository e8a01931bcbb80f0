"""How high can split PSNR go? A perfect denoiser's score on simulated b-scans, beside BM3D and a model.

Split PSNR (``napari_hdcyclegan.metrics.split_psnr``, the measure of ``real_scan_check.py`` and
``residual_check.py``) scores a method's output on one column half against the other RAW half, so
even a perfect denoiser keeps the target half's own noise in its score. This script measures where
that ceiling lies on simulated macular b-scans (``random_params`` at 496 x 512, macular geometry, the
frame counts given, speckle grain ``--psf`` and no frame-averaging blur), where the truth is known,
and prints per frame count the mean over ``--n`` scans of the scan's own statistics (lag-1 axial and
lateral autocorrelation of the high-passed image, ``speckle_stats.bscan_stats``: match them and the
raw row to the real scans) and of the split PSNR of:

* ``raw``: no denoising (compare with the real scans' raw split PSNR to pick the matching row);
* ``model``: ``--weights`` (a shipped name or folder; ``none`` to skip);
* ``bm3d x5``: with ``--bm3d`` (slow: ~2 x 3 s per scan);
* ``ideal``: the conditional mean of the INPUT half, i.e. a perfect denoiser that does not
  interpolate between A-scans (estimated by the mean of ``--k`` other acquisitions of the scene);
* ``ceiling``: the conditional mean of the TARGET half: no method scores higher in expectation,
  short of predicting the target half's own noise from speckle correlated across A-scans;
* ``<method> vs truth``: what split PSNR stands in for, the PSNR of the method's full-width output
  against the scene's conditional mean (mean offset removed as above, ``metrics.offset_free_psnr``).

The ``--k`` acquisitions leave noise of 1/k of one acquisition's variance in both oracle rows, so
they read ``10 log10(1 + 1/k)`` dB low at most (0.07 dB at k = 64). Asserts nothing. Example (the
numbers in docs/real_training.md, section 18)::

    python scripts/split_ceiling.py --frames 2,3,4 --n 8 --bm3d                  # like the Tian scans
    python scripts/split_ceiling.py --frames 1,2 --psf 1.4,0.3 --n 8 --bm3d      # independent A-scans
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from napari_hdcyclegan import metrics  # noqa: E402
from napari_hdcyclegan import simulate as sim  # noqa: E402
from napari_hdcyclegan.speckle_stats import bscan_stats  # noqa: E402

SHAPE = (496, 512)
STATS = ("acf_axial_1", "acf_lateral_1")


def oracle_scores(scan: np.ndarray, mean: np.ndarray) -> tuple[float, float]:
    """(ideal, ceiling) split PSNR of one scan given its scene's conditional-mean estimate ``mean``."""
    halves, means = metrics.column_halves(scan), metrics.column_halves(mean)
    ideal = [metrics.offset_free_psnr(means[i] - halves[1 - i]) for i in (0, 1)]
    ceiling = [metrics.offset_free_psnr(means[1 - i] - halves[1 - i]) for i in (0, 1)]
    return float(np.mean(ideal)), float(np.mean(ceiling))


def methods(weights: str, bm3d: bool) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The denoisers to score by name: the model (unless ``none``) and BM3D x5 (if asked)."""
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if weights != "none":
        from napari_hdcyclegan.engine import get_denoiser

        out["model"] = get_denoiser(weights, "cpu").denoise
    if bm3d:
        from napari_hdcyclegan.baselines import denoise_bm3d

        out["bm3d x5"] = lambda b: denoise_bm3d(b, sigma_scale=5.0)
    return out


def score_frames(frames: int, n: int, k: int, denoisers: dict[str, Callable[[np.ndarray], np.ndarray]],
                 seed: int, psf: tuple[float, float]) -> dict[str, float]:
    """Mean statistics and split PSNR of each row over ``n`` simulated maculae averaged from ``frames`` frames."""
    truth = [f"{name} vs truth" for name in ("raw", *denoisers)]
    rows: dict[str, list[float]] = {name: [] for name in (*STATS, "raw", *denoisers, "ideal", "ceiling", *truth)}
    for i in range(n):
        scan, mean = sim.truth_pair(sim.speckle_params(seed + i, psf, frames, SHAPE), k, seed=seed + i)
        stats = bscan_stats(scan)
        for name in STATS:
            rows[name].append(stats[name])
        rows["raw"].append(metrics.split_psnr(scan))
        rows["raw vs truth"].append(metrics.offset_free_psnr(scan - mean))
        for name, denoise in denoisers.items():
            rows[name].append(metrics.split_psnr(scan, denoise))
            rows[f"{name} vs truth"].append(metrics.offset_free_psnr(denoise(scan) - mean))
        ideal, ceiling = oracle_scores(scan, mean)
        rows["ideal"].append(ideal)
        rows["ceiling"].append(ceiling)
    return {name: float(np.mean(v)) for name, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", default="2,3,4", help="comma-separated frame counts (one row each)")
    p.add_argument("--n", type=int, default=8, help="simulated b-scans per frame count")
    p.add_argument("--k", type=int, default=64, help="acquisitions averaged for the oracle rows")
    p.add_argument("--weights", default="spectralis-real", help="model name or folder; 'none' to skip")
    p.add_argument("--bm3d", action="store_true", help="score BM3D x5 too (slow)")
    p.add_argument("--seed", type=int, default=5000, help="first random_params seed")
    shared = ",".join(str(v) for v in sim.SPECKLE_REGIMES["shared"][0])
    p.add_argument("--psf", default=shared, help="speckle grain sigma AXIAL,LATERAL in px (default: like Tian)")
    a = p.parse_args(argv)
    if a.n < 1 or a.k < 1:
        raise SystemExit("error: --n and --k must be at least 1")
    try:
        axial, lateral = (float(v) for v in a.psf.split(","))
    except ValueError:
        raise SystemExit(f"error: --psf needs two numbers AXIAL,LATERAL, got {a.psf!r}") from None
    denoisers = methods(a.weights, a.bm3d)
    names = [*STATS, "raw", *denoisers, "ideal", "ceiling", *(f"{n} vs truth" for n in ("raw", *denoisers))]
    print(f"split PSNR (dB), mean of {a.n} simulated maculae {SHAPE[0]}x{SHAPE[1]} per row; psf {a.psf}; "
          f"oracle k = {a.k}")
    print("| frames | " + " | ".join(names) + " |\n|---:|" + "---:|" * len(names))
    for frames in (int(f) for f in a.frames.split(",")):
        row = score_frames(frames, a.n, a.k, denoisers, a.seed, (axial, lateral))
        print(f"| {frames} | " + " | ".join(f"{row[n]:.2f}" for n in names) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
