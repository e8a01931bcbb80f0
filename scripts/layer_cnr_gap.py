"""Is the model's layer CNR on the Tian b-scans really below BM3D's? The gap per b-scan, with its spread.

``real_scan_check.py denoise`` (the shared tools folder) prints one layer CNR per method, the mean over
the b-scans. This script takes the same measure per b-scan (``layer_stats`` between the manual
boundaries) for the model (``--weights``, default ``auto`` as the CLI; run through the engine) and for
BM3D x5 (the tool's, read from its ``--cache`` file where the b-scan is there, computed otherwise) and
prints, per group of subjects, the mean of model minus BM3D, its standard deviation, a 95 % bootstrap
interval of the mean and how many b-scans the model leads on. Asserts nothing.

    python scripts/layer_cnr_gap.py --cache BM3D_CACHE.json [--weights auto] [--subjects 5 1,2,3,4]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"


def gaps(den: Any, rc: Any, root: Path, subjects: list[int], cache: dict) -> np.ndarray:
    """Model minus BM3D x5 layer CNR, one value per b-scan of ``subjects``."""
    out = []
    for s in subjects:
        for name, im, lab in rc.load_subject(str(root), s):
            bands = rc.bands_of(lab, im.shape[0])
            key = f"{name}/x{rc.BM3D_MULT:g}"
            bm3d = cache[key][0] if key in cache else rc.layer_stats(rc.bm3d_of(im), bands)[0]
            model = rc.layer_stats(rc.as255(den.denoise(im)), bands)[0]
            out.append(float(np.mean(model) - np.mean(bm3d)))
    return np.array(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="auto")
    p.add_argument("--subjects", nargs="+", default=["5", "1,2,3,4"], help="groups of comma-separated subjects")
    p.add_argument("--cache", type=Path, help="the shared tool's BM3D cache (JSON); BM3D runs where it lacks a b-scan")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared folder (with data/ and tools/)")
    a = p.parse_args()
    if not (a.data / "tools" / "real_scan_check.py").is_file():
        raise SystemExit(f"{a.data}: shared folder with tools/real_scan_check.py not found (pass --data)")
    sys.path.insert(0, str(a.data / "tools"))
    import real_scan_check as rc

    from napari_hdcyclegan.engine import get_denoiser

    cache = json.loads(a.cache.read_text()) if a.cache and a.cache.is_file() else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        den = get_denoiser(a.weights, "cpu")
    rng = np.random.default_rng(0)
    root = a.data / "data" / "layers" / "tian2015_octlayers"
    print(f"{a.weights} minus BM3D x{rc.BM3D_MULT:g}, layer CNR per b-scan")
    for group in a.subjects:
        d = gaps(den, rc, root, [int(s) for s in group.split(",")], cache)
        boot = [rng.choice(d, d.size).mean() for _ in range(5000)]
        print(f"  subjects {group}: mean {d.mean():+.3f}, sd {d.std(ddof=1):.3f}, 95 % bootstrap "
              f"{np.percentile(boot, 2.5):+.3f} to {np.percentile(boot, 97.5):+.3f}, "
              f"model ahead on {int((d > 0).sum())} of {d.size}")


if __name__ == "__main__":
    main()
