"""Is the model's layer CNR on the Tian b-scans really below BM3D's? The gap per b-scan, with its spread.

``real_scan_check.py denoise`` (the shared tools folder) prints one layer CNR per method, the mean over
the b-scans. This script takes the same measure per b-scan (``layer_stats`` between the manual
boundaries) for the model (``--weights``, default ``auto`` as the CLI; run through the engine) and for
BM3D x5 (the tool's, read from its ``--cache`` file where the b-scan is there, computed otherwise) and
prints, per group of subjects, the mean of model minus BM3D, its standard deviation, a 95 % bootstrap
interval of the mean and how many b-scans the model leads on. With ``--pairs``, also per pair of
neighbouring bands (band 0: the 30 px above the ILM; band k: between the k-th and (k+1)-th traced
boundary; the last: the 30 px below the lowest) the mean CNR, contrast (grey levels) and noise
(sqrt(sd1² + sd2²) of the two bands, i.e. contrast / CNR) of both: which layers a gap comes from, and
whether from contrast or from the spread inside the layers. Asserts nothing.

    python scripts/layer_cnr_gap.py --cache BM3D_CACHE.json [--weights auto] [--subjects 5 1,2,3,4] [--pairs]
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


def pair_ids(bands: list[np.ndarray], width: int) -> list[int]:
    """The band pair of each value the shared tool's ``layer_stats`` returns, in its order (64-column
    windows, then pairs whose two bands both hold 64 pixels in the window)."""
    ids = []
    for c0 in range(0, width - 63, 64):
        ok = [int(b[:, c0:c0 + 64].sum()) >= 64 for b in bands]
        ids += [k for k in range(len(bands) - 1) if ok[k] and ok[k + 1]]
    return ids


def gaps(den: Any, rc: Any, root: Path, subjects: list[int], cache: dict) -> tuple[np.ndarray, dict]:
    """Model minus BM3D x5 layer CNR, one value per b-scan of ``subjects``, and per method
    (``model``, ``bm3d``) and band pair the (CNR, contrast) values of every window."""
    out: list[float] = []
    per_pair: dict[str, dict[int, list[tuple[float, float]]]] = {"model": {}, "bm3d": {}}
    for s in subjects:
        for name, im, lab in rc.load_subject(str(root), s):
            bands = rc.bands_of(lab, im.shape[0])
            key = f"{name}/x{rc.BM3D_MULT:g}"
            bm3d = cache[key][:2] if key in cache else rc.layer_stats(rc.bm3d_of(im), bands)
            model = rc.layer_stats(rc.as255(den.denoise(im)), bands)
            out.append(float(np.mean(model[0]) - np.mean(bm3d[0])))
            ids = pair_ids(bands, im.shape[1])
            for method, (cnr, contrast) in (("model", model), ("bm3d", bm3d)):
                if len(cnr) != len(ids):
                    raise SystemExit(f"{name}: {len(cnr)} CNR values for {len(ids)} band pairs; the shared "
                                     "tool's layer_stats has changed")
                for k, c, d in zip(ids, cnr, contrast):
                    per_pair[method].setdefault(k, []).append((c, d))
    return np.array(out), per_pair


def print_pairs(per_pair: dict) -> None:
    """Mean CNR, contrast and noise (contrast / CNR) per band pair, model against BM3D."""
    print("    band pair: CNR model / BM3D, contrast model / BM3D, noise model / BM3D")
    for k in sorted(per_pair["model"]):
        m, b = (np.array(per_pair[x][k]) for x in ("model", "bm3d"))
        # contrast / CNR: windows without contrast say nothing about the noise
        noise = [float(np.mean(v[v[:, 0] > 0, 1] / v[v[:, 0] > 0, 0])) for v in (m, b)]
        print(f"    {k}/{k + 1}: {m[:, 0].mean():.2f} / {b[:, 0].mean():.2f}, {m[:, 1].mean():.1f} / "
              f"{b[:, 1].mean():.1f}, {noise[0]:.1f} / {noise[1]:.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="auto")
    p.add_argument("--subjects", nargs="+", default=["5", "1,2,3,4"], help="groups of comma-separated subjects")
    p.add_argument("--cache", type=Path, help="the shared tool's BM3D cache (JSON); BM3D runs where it lacks a b-scan")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared folder (with data/ and tools/)")
    p.add_argument("--pairs", action="store_true", help="also per pair of neighbouring bands")
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
        d, per_pair = gaps(den, rc, root, [int(s) for s in group.split(",")], cache)
        boot = [rng.choice(d, d.size).mean() for _ in range(5000)]
        print(f"  subjects {group}: mean {d.mean():+.3f}, sd {d.std(ddof=1):.3f}, 95 % bootstrap "
              f"{np.percentile(boot, 2.5):+.3f} to {np.percentile(boot, 97.5):+.3f}, "
              f"model ahead on {int((d > 0).sum())} of {d.size}")
        if a.pairs:
            print_pairs(per_pair)


if __name__ == "__main__":
    main()
