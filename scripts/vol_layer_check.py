"""The shared tool's denoising measures on the Heidelberg ``.vol`` scans, with the vendor lines as bands.

``real_scan_check.py denoise`` (the shared tools folder) scores layer CNR and contrast kept between
the bands of manually traced boundaries. The ``.vol`` exports carry the vendor's own ILM, RNFL and BM
lines (the RNFL line where the file has one); this script uses them the same way (``bands_of``:
30 px above the ILM, ILM-RNFL, RNFL-BM, 30 px below the BM; statistics per 64-A-scan block, A-scans
without a line left out) and prints, for the raw scan, the model (``--weights``, default ``auto`` as
the CLI) and BM3D (sigma = 5 x skimage's estimate, as the tool): split PSNR (method run on the column
halves), layer CNR and contrast kept. The b-scans are taken in the 8-bit display domain, as the tool
reads its PNGs. The vendor lines of ``valid.vol`` are off in places (README, Boundaries); they are
the same for every method. ``--pairs`` adds each method's layer CNR per pair of neighbouring bands
(mean over the blocks where both bands have 64 pixels), to see which boundary a difference comes from.

    python scripts/vol_layer_check.py [--weights auto] [--data DIR] [--no-bm3d] [--pairs]
"""

from __future__ import annotations

import argparse
import glob
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
LINES = ("ILM", "RNFL", "RPE")


def vol_scans(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, 8-bit display b-scan, vendor lines (K, W), top to bottom, NaN where missing) of every ``.vol``."""
    from napari_hdcyclegan.io import read_oct

    out = []
    for path in sorted(glob.glob(str(data / "vendor" / "*" / "*.vol"))):
        img = read_oct(path)
        bscan = np.clip(np.rint(np.asarray(img.data[0], np.float64) * 255), 0, 255).astype(np.uint8)
        lines = np.stack([np.asarray(img.boundaries[k][0], float) for k in LINES if k in img.boundaries])
        out.append((Path(path).name, bscan, lines))
    return out


def pair_cnr(rc: Any, img: np.ndarray, bands: list[np.ndarray]) -> list[float]:
    """Layer CNR per pair of neighbouring bands: the shared tool's ``layer_stats`` on each pair alone."""
    per = [rc.layer_stats(img, bands[i:i + 2])[0] for i in range(len(bands) - 1)]
    return [float(np.mean(v)) if v else float("nan") for v in per]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="auto")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared folder (with data/ and tools/)")
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--pairs", action="store_true", help="also layer CNR per pair of neighbouring bands")
    a = p.parse_args()
    if not (a.data / "tools" / "real_scan_check.py").is_file():
        raise SystemExit(f"{a.data}: shared folder with tools/real_scan_check.py not found (pass --data)")
    sys.path.insert(0, str(a.data / "tools"))
    import real_scan_check as rc

    from napari_hdcyclegan.engine import choose_denoiser

    def model(x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            den, _ = choose_denoiser(a.weights, "cpu", data=x)
        return np.asarray(den.denoise(x), np.float64)

    methods = {"raw": lambda x: x.astype(np.float64), "model": model}
    if not a.no_bm3d:
        methods["bm3d x5"] = rc.bm3d_of
    print(f"weights {a.weights}; per .vol b-scan: split PSNR (dB) / layer CNR / contrast kept")
    print("| scan | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    totals: dict[str, list] = {m: [] for m in methods}
    pairs: list[str] = []
    for name, im, lines in vol_scans(a.data / "data"):
        bands = rc.bands_of(lines, im.shape[0])
        raw_diff = np.maximum(np.array(rc.layer_stats(im, bands)[1]), 1e-6)
        even, odd = rc.halves(im)
        cells = []
        for m, fn in methods.items():
            out = fn(im)
            if a.pairs:
                pairs.append(f"{name} {m}: " + " / ".join(f"{c:.2f}" for c in pair_cnr(rc, out, bands)))
            cnr, diff = rc.layer_stats(out, bands)
            kept = float(np.median(np.array(diff) / raw_diff))
            scores = (rc.split_psnr(fn(even), fn(odd), im), float(np.mean(cnr)), kept)
            totals[m].append(scores)
            cells.append("{:.2f} / {:.2f} / {:.2f}".format(*scores))
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    means = ("{:.2f} / {:.2f} / {:.2f}".format(*np.mean(v, axis=0)) for v in totals.values())
    print("| mean | " + " | ".join(means) + " |")
    if pairs:
        print("layer CNR per pair of neighbouring bands, top to bottom (the first pair: the 30 px above the "
              "first line against the band below that line):")
        print("\n".join(f"  {line}" for line in pairs))


if __name__ == "__main__":
    main()
