"""Measure ILM and RPE (Bruch's membrane) detection on real scans: the README's boundary table.

Datasets (the project's shared reference data, a folder ``shared/data`` beside the repository;
``--data`` points elsewhere; none of it ships with the package):

* Tian et al. 2015 Spectralis maculae (subjects 1-5, 10 b-scans each, manual boundaries; ILM = label
  1, BM = label 8). Subjects 1-3 were used for tuning, 4-5 only for checking.
* The four Heidelberg ``.vol`` exports against their own (vendor, automatic) ILM and BM lines, where
  the retina is inside the image: A-scans where the vendor gives both lines with a thickness within
  0.6-1.5x its median (the vendor lines of the circle scan ``valid.vol`` follow a mirrored copy
  where the retina folds over the top edge). Also: A-scans whose ILM sits at the first image rows
  (a thickness plateau).
* The six inner Tian boundaries (labels 2-7, eyepy's names RNFL, IPL, INL, OPL, PR1, PR2; ``inner=True``),
  tuned on subjects 1-3, checked on 4-5: mean absolute error per boundary.
* Duke / Fang 2013 Bioptigen pairs: coverage of both lines on the noisy and the averaged b-scan.
* CPU time (process time, one thread: run with OMP_NUM_THREADS=1) of the boundary step alone (the
  feature map and the denoised b-scan computed beforehand) per 496 x 768 b-scan.

    OMP_NUM_THREADS=1 python scripts/measure_boundaries.py [--weights NAME_OR_DIR] [--data DIR] [--figure PNG]

Errors are mean absolute differences in px; rows are 0-based from the top, and a boundary row is the
first row past the steepest step (stage two's ``offset`` of 0.5 px after the derivative's peak).
"""

from __future__ import annotations

import argparse
import glob
import time
import warnings
from pathlib import Path

import numpy as np

from napari_hdcyclegan import boundaries as bd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def tian_scans(root: Path, subject: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, b-scan uint8, labels (8, W)) of one Tian subject."""
    import imageio.v3 as iio

    labels = [np.loadtxt(root / f"Subject{subject}_{k}.txt", delimiter=",") for k in range(1, 9)]
    out = []
    for path in sorted(root.glob(f"Subject{subject}_*.png")):
        n = int(path.stem.split("_")[1])
        im = iio.imread(path)
        out.append((path.stem, im[..., 0] if im.ndim == 3 else im, np.stack([lab[:, n - 1] for lab in labels])))
    return out


def errors(found: dict, truth: dict, scored: np.ndarray) -> dict[str, float]:
    """MAE per boundary over scored A-scans with a detection, and the coverage of both lines."""
    both = scored & np.isfinite(found["ILM"]) & np.isfinite(found["RPE"])
    out = {k: float(np.mean(np.abs(found[k][both] - truth[k][both]))) if both.any() else float("nan")
           for k in bd.BOUNDARY_NAMES}
    out["cov"] = float(both.sum() / max(scored.sum(), 1))
    out["n"] = int(scored.sum())
    return out


def pooled(rows: list[dict]) -> dict[str, float]:
    """A-scan-weighted means of per-b-scan errors."""
    n = np.array([r["n"] * r["cov"] for r in rows], float)
    out = {k: float(np.nansum([r[k] * w for r, w in zip(rows, n)]) / max(n.sum(), 1)) for k in bd.BOUNDARY_NAMES}
    out["cov"] = float(np.sum(n) / max(sum(r["n"] for r in rows), 1))
    out["n"] = int(sum(r["n"] for r in rows))
    return out


def line(label: str, r: dict, note: str = "") -> str:
    """One markdown table row."""
    return f"| {label:<34} | {r['ILM']:5.2f} | {r['RPE']:5.2f} | {100 * r['cov']:5.1f} | {r['n']:6d} | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="spectralis-sim", help="model name or directory")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--figure", type=Path, default=None, help="write a picture of real scans here")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: shared data not found (pass --data)")
    from napari_hdcyclegan.engine import get_denoiser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        denoiser = get_denoiser(args.weights, "cpu")
    stage, channel = bd.boundary_channel(denoiser.config) or ("init", 0)
    print(f"model: {denoiser.name} (trained={denoiser.trained}), boundary channel {stage}/{channel}")
    t0 = time.time()
    cache: dict[str, tuple] = {}

    def run(name: str, bscan: np.ndarray, inner: bool = False) -> dict:
        fmap = np.asarray(denoiser.feature_maps(bscan, stage, [channel]), np.float32)[0]
        den = np.asarray(denoiser.denoise(bscan), np.float32) if denoiser.trained else bscan
        cache[name] = (bscan, den, fmap)
        return {k: np.asarray(v, float) for k, v in bd.detect_checked(den, fmap, inner=inner).items()}

    table = ["| dataset                            | ILM   | BM    | cov % | A-scans | note |",
             "|------------------------------------|-------|-------|-------|---------|------|"]
    shown: dict[str, tuple] = {}
    tian = args.data / "layers" / "tian2015_octlayers"
    groups: dict[str, list] = {"tuned on (1-3)": [], "checked on (4-5)": []}
    inner: dict[str, list] = {"1-3": [], "4-5": []}
    for s in range(1, 6):
        rows = []
        for name, im, lab in tian_scans(tian, s):
            found = run(name, im, inner=True)  # ILM and BM are the same with or without inner lines
            inner["1-3" if s <= 3 else "4-5"].append(
                [np.nanmean(np.abs(found[k] - lab[bd.TIAN_LABELS[k] - 1])) for k in bd.LAYER_BOUNDARIES])
            rows.append(errors(found, {"ILM": lab[0], "RPE": lab[7]}, np.ones(im.shape[1], bool)))
            shown.setdefault("tian", (name, im, found, {"ILM": lab[0], "RPE": lab[7]}, "manual"))
        groups["tuned on (1-3)" if s <= 3 else "checked on (4-5)"].extend(rows)
        table.append(line(f"Tian subject {s} (10 b-scans)", pooled(rows), "vs manual"))
    for label, rows in groups.items():
        table.append(line(f"Tian {label}", pooled(rows), "vs manual"))

    from napari_hdcyclegan.io import read_oct

    for path in sorted(glob.glob(str(args.data / "vendor" / "*" / "*.vol"))):
        img = read_oct(path)
        vendor = {k: np.asarray(img.boundaries[k][0], float) for k in bd.BOUNDARY_NAMES}
        thick = vendor["RPE"] - vendor["ILM"]
        with np.errstate(invalid="ignore"):
            scored = np.isfinite(thick) & (np.abs(thick / np.nanmedian(thick) - 1.05) <= 0.45)
        found = run(Path(path).name, img.data[0])
        plateau = int(np.sum(found["ILM"] < 3))
        table.append(line(Path(path).name, errors(found, vendor, scored),
                          f"vs vendor; ILM at top rows: {plateau}"))
        if not path.endswith("_4.vol"):  # _2 and _4 are repeats of one scan
            shown[Path(path).stem] = (Path(path).name, img.data[0], found, vendor, "vendor")

    import imageio.v3 as iio

    for kind in ("noisy", "averaged"):
        covs = []
        for folder in sorted(glob.glob(str(args.data / "paired" / "duke_fang2013_*" / "*"))):
            f = Path(folder)
            noisy = "test.tif" if (f / "test.tif").exists() else "raw.tif"
            src = f / ("average.tif" if kind == "averaged" else noisy)
            found = run(f"{f.name}-{kind}", iio.imread(src))
            covs.append(float(np.mean(np.isfinite(found["ILM"]) & np.isfinite(found["RPE"]))))
            if kind == "noisy":
                shown.setdefault("duke", (f"Duke {f.name} (noisy)", iio.imread(src), found, None, ""))
        table.append(f"| {f'Duke pairs, {kind} ({len(covs)})':<34} |   -   |   -   | {100 * np.mean(covs):5.1f} | "
                     f"{'':7s} | both lines; lowest b-scan {100 * min(covs):.1f} % |")

    times = []
    for bscan, den, fmap in cache.values():
        if bscan.shape == (496, 768):
            for _ in range(3):
                t = time.process_time()  # CPU time of this process: unaffected by other jobs' load
                bd.detect_checked(den, fmap)
                times.append(time.process_time() - t)
    print("\n".join(table))
    print("\nTian, all eight boundaries (detect_checked(..., inner=True)), mean abs error px per b-scan:")
    print("| subjects | " + " | ".join(f"{k} ({bd.TIAN_LABELS[k]})" for k in bd.LAYER_BOUNDARIES) + " |")
    print("|---" * (len(bd.LAYER_BOUNDARIES) + 1) + "|")
    for group, errs in inner.items():
        print(f"| {group} ({len(errs)}) | " + " | ".join(f"{v:.2f}" for v in np.mean(errs, axis=0)) + " |")
    print(f"CPU time of the boundary step per 496x768 b-scan: median {np.median(times):.3f} s, "
          f"max {np.max(times):.3f} s ({len(times)} runs, feature maps precomputed)")
    print(f"total {time.time() - t0:.0f} s")
    if args.figure:
        save_figure(args.figure, list(shown.values()))


def save_figure(path: Path, shown: list[tuple]) -> None:
    """Raw b-scans with the detected lines (solid) and the reference lines (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 3.3 * len(shown)))
    for ax, (name, bscan, found, ref, how) in zip(np.atleast_1d(axes), shown):
        ax.imshow(bscan, cmap="gray", aspect="auto")
        for k in bd.BOUNDARY_NAMES:
            ax.plot(found[k], color=bd.BOUNDARY_COLORS[k], lw=1.0, label=f"{k} detected")
            if ref is not None:
                ax.plot(ref[k], ":", color="cyan", lw=1.0, label=f"{how} lines" if k == "ILM" else None)
        ax.set_title(name, fontsize=9)
        ax.legend(loc="lower right", fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
