"""Tune the baselines' noise multipliers on the Duke train+val pairs (never the test pairs).

``python -m training.tune_baselines [--methods bm3d nlmeans ...] [--out DIR]`` prints, per method and
multiplier, mean PSNR / SSIM against average.tif (8-bit, data range 255, Wang 2004 SSIM) over the
train and val splits of ``training.data.duke_pairs``; the defaults in ``baselines.py`` come from it.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from napari_hdcyclegan import baselines
from napari_hdcyclegan.metrics import psnr, ssim

#: Parameter grid per method: (keyword, values).
GRID: dict[str, tuple[str, tuple]] = {
    "bm3d": ("sigma_scale", (1.5, 2.0, 2.5, 3.0, 4.0)),
    "nlmeans": ("h_scale", (0.8, 1.0, 1.5, 2.0, 2.5, 3.0)),
    "wavelet": ("sigma_scale", (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)),
    "bilateral": ("color_scale", (1.0, 2.0, 3.0, 4.0, 6.0)),
    "median": ("size", (3, 5, 7, (7, 5), 9)),
}


def tuning_pairs(root: str | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Duke train + val pairs (S01-S05, T02-T09); the test split S06-S09 is excluded."""
    from training.data import duke_pairs

    return duke_pairs("train", root) + duke_pairs("val", root)


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print/write it."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--methods", nargs="+", default=list(GRID))
    ap.add_argument("--duke-root", default=None)
    ap.add_argument("--out", default="runs/tune_baselines")
    ap.add_argument("--pairs", nargs="+", default=None,
                    help="subset of train/val pair names (e.g. S01 T04): BM3D takes ~15 s per b-scan")
    ap.add_argument("--values", nargs="+", type=float, default=None, help="override the grid values")
    args = ap.parse_args(argv)
    pairs = tuning_pairs(args.duke_root)
    if args.pairs:
        pairs = [p for p in pairs if p[0].split("/")[0] in args.pairs]
    names = [n for n, _, _ in pairs]
    if any(n.startswith(("S06", "S07", "S08", "S09")) for n in names):
        raise RuntimeError("test pairs leaked into tuning")
    print(f"tuning on {len(pairs)} pairs: {', '.join(names)}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in args.methods:
        key, values = GRID[method]
        values = tuple(args.values) if args.values else values
        for v in values:
            t0 = time.perf_counter()
            p, s = [], []
            for _, noisy, ref in pairs:
                den = baselines.BASELINES[method](noisy, **{key: v})
                p.append(psnr(den, ref, 255))
                s.append(ssim(den, ref, 255))
            sec = (time.perf_counter() - t0) / len(pairs)
            row = dict(method=method, param=key, value=str(v), psnr=np.mean(p), psnr_std=np.std(p),
                       ssim=np.mean(s), ssim_std=np.std(s), sec_per_bscan=sec)
            rows.append(row)
            print(f"{method:9s} {key}={str(v):7s} PSNR {row['psnr']:.2f} ± {row['psnr_std']:.2f}  "
                  f"SSIM {row['ssim']:.3f} ± {row['ssim_std']:.3f}  {sec:.2f} s/b-scan", flush=True)
            with open(out / "grid.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
