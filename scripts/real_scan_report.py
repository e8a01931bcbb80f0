"""Contact sheet and no-reference scores of the denoisers on real scans of every shared source.

For one b-scan of each real source in the shared data folder (Spectralis .vol files, a held-back
Tian subject, Duke test frames, the single noisy scans of other scanners) it writes
``contact_sheet.png``: raw | each model | BM3D | residual (model - raw, of the first model), with a
3x zoomed inset row under each b-scan, and prints a table of

split PSNR (dB): denoise the even-column half, compare it with the raw odd-column half and back,
mean difference removed (as ``real_scan_check.py``). It needs no clean reference, so it works on
every scanner; over-smoothing, painted texture and leftover noise all lower it. (Layer contrast needs
layer labels: ``real_scan_check.py denoise`` measures it on the labelled Tian scans.) A second table
gives each method's profile change (``napari_hdcyclegan.profiles``): how much it alters the input's
mean A-scan profile around the brightest layer, in 8-bit grey levels; 0 keeps the layer shape. A
third gives the residual-edge correlation (``profiles.residual_edge_correlation``): whether the
smoothed residual follows the layer edges (> 0: lines along them) or is noise (about 0 or below).

    python scripts/real_scan_report.py [--weights W [W ...]] [--data DIR] [--out DIR] [--no-bm3d]

BM3D runs with sigma = 5 x skimage's estimate (the best split-PSNR multiplier on Spectralis, as in
``real_scan_check.py``) and is cached in ``OUT/bm3d_cache.npz``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_hdcyclegan.engine import get_denoiser, release
from napari_hdcyclegan.intensity import to_unit, unit_range
from napari_hdcyclegan.metrics import split_psnr
from napari_hdcyclegan.profiles import mean_profile_change, residual_edge_correlation

HERE = Path(__file__).resolve().parents[1]
BM3D_SCALE = 5.0
FEW_FRAMES = "Bioptigen 3-frame average (Duke S07)"


def scans(root: Path) -> list[tuple[str, np.ndarray]]:
    """One (name, display-domain [0, 1] float32) b-scan per real source."""
    from napari_hdcyclegan.io import read_oct

    picks = [("Spectralis .vol RNFL circle scan (valid.vol)", root / "vendor/heidelberg_vol/valid.vol"),
             ("Spectralis .vol line", root / "vendor/spectralis_raw_data/Willis_B_716_0.vol"),
             ("Spectralis .vol circle", root / "vendor/spectralis_raw_data/Willis_B_716_2.vol"),
             ("Spectralis macula (Tian S5, held back)", root / "layers/tian2015_octlayers/Subject5_05.png"),
             ("Bioptigen (Duke S07 test frame)", root / "paired/duke_fang2013_dt1/S07/test.tif"),
             (FEW_FRAMES, root / "paired"),
             ("other scanner (se_despeckling 5)", root / "single_noisy/se_despeckling/5.png"),
             ("other scanner (se_despeckling 7)", root / "single_noisy/se_despeckling/7.png"),
             ("other scanner (SiameseGAN set 2, 1)", root / "single_noisy/siamesegan_dataset2/1.tif")]
    out = []
    for name, path in picks:
        if name == FEW_FRAMES:
            b = few_frame_average(path)
        elif path.exists():
            data = np.asarray(read_oct(path).data)
            b = data.reshape(-1, *data.shape[-2:])[0]
        else:
            continue
        if b is not None:
            out.append((name, to_unit(b, *unit_range(b, {"method": "dtype"}))))
    return out


def few_frame_average(paired: Path) -> np.ndarray | None:
    """The mean of Duke S07's first three registered frames (a 3-frame Bioptigen average), if present."""
    from training.data import DataError
    from training.frames import frame_average_pairs

    try:
        return next(x for name, x, _ in frame_average_pairs("test", 3, paired) if name.startswith("S07/"))
    except DataError:
        return None


def bm3d(img: np.ndarray, cache: dict, key: str) -> np.ndarray:
    if key not in cache:
        from napari_hdcyclegan.baselines import denoise_bm3d

        cache[key] = denoise_bm3d(img, sigma_scale=BM3D_SCALE).astype(np.float32)
    return cache[key]


def inset(img: np.ndarray, ref: np.ndarray, zoom: int = 3) -> np.ndarray:
    """The central retina region (around the raw scan's brightest rows), zoomed by pixel repetition."""
    rows = np.argsort(ref.mean(1))[-20:].mean()
    h, w = 64, 96
    y = int(np.clip(rows - h / 2, 0, img.shape[0] - h))
    x = (img.shape[1] - w) // 2
    return np.kron(img[y:y + h, x:x + w], np.ones((zoom, zoom)))


def sheet(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = len(rows[0][1])
    fig, axes = plt.subplots(2 * len(rows), ncol, figsize=(3.2 * ncol, 5.2 * len(rows)),
                             gridspec_kw={"height_ratios": [1.3, 1] * len(rows)})
    for r, (name, panels) in enumerate(rows):
        for c, (title, img) in enumerate(panels):
            resid = title.startswith("residual")
            kw = dict(cmap="RdBu_r", vmin=-0.3, vmax=0.3) if resid else dict(cmap="gray", vmin=0, vmax=1)
            axes[2 * r, c].imshow(img, aspect="auto", interpolation="nearest", **kw)
            axes[2 * r, c].set_title(f"{name}\n{title}" if c == 0 else title, fontsize=8)
            axes[2 * r + 1, c].imshow(inset(img, panels[0][1]), interpolation="nearest", **kw)
            for ax in (axes[2 * r, c], axes[2 * r + 1, c]):
                ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", nargs="+", default=["auto", "spectralis-real", "bioptigen-duke", "bioptigen-averaged"])
    ap.add_argument("--data", default=str(HERE.parent / "shared" / "data"))
    ap.add_argument("--out", default="runs/real_scan_report")
    ap.add_argument("--no-bm3d", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_file = out / "bm3d_cache.npz"
    cache = dict(np.load(cache_file)) if cache_file.exists() else {}
    items = scans(Path(a.data))
    if not items:
        raise SystemExit(f"error: no real scans found under {a.data}")
    results: dict[str, list[float]] = {name: [] for name in ["raw", *a.weights] + ([] if a.no_bm3d else ["bm3d x5"])}
    profile: dict[str, list[float]] = {name: [] for name in results if name != "raw"}
    edges: dict[str, list[float]] = {name: [] for name in profile}
    panels: dict[str, list] = {name: [("raw", img)] for name, img in items}
    for w in a.weights:
        def fn(x: np.ndarray, w: str = w) -> np.ndarray:  # "auto" chooses per b-scan, as the CLI does
            x = x.astype(np.float32)
            return get_denoiser(w, "cpu", data=x).denoise(x)

        for name, img in items:
            o = fn(img)
            results[w].append(split_psnr(img, fn))
            profile[w].append(255 * mean_profile_change(o, img))
            edges[w].append(residual_edge_correlation(o, img))
            panels[name].append((w, o))
        release()
    for name, img in items:
        results["raw"].append(split_psnr(img, lambda x: x))
        if not a.no_bm3d:
            key = name.replace(" ", "_")
            bm3d_fn = lambda x, k=key: bm3d(x, cache, f"{k}/{x.shape[1]}/{float(x[0].sum()):.3f}")  # noqa: E731
            o = bm3d(img, cache, key)
            results["bm3d x5"].append(split_psnr(img, bm3d_fn))
            profile["bm3d x5"].append(255 * mean_profile_change(o, img))
            edges["bm3d x5"].append(residual_edge_correlation(o, img))
            panels[name].append(("BM3D x5", o))
        panels[name].append((f"residual {a.weights[0]} - raw", panels[name][1][1] - img))
    np.savez_compressed(cache_file, **cache)
    names = [n for n, _ in items]
    for table, note in ((results, "split PSNR (dB), higher is better"),
                        (profile, "profile change (8-bit grey levels), lower keeps the layer shape"),
                        (edges, "residual-edge correlation, about 0 or below: the residual is noise")):
        print("| method | " + " | ".join(names) + " | mean |")
        print("|---|" + "---:|" * (len(names) + 1))
        for m, vals in table.items():
            print(f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.2f} |")
        print(f"cells: {note}\n")
    sheet([(n, panels[n]) for n in names], out / "contact_sheet.png")
    print(f"wrote {out / 'contact_sheet.png'}")


if __name__ == "__main__":
    main()
