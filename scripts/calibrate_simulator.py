"""Measure speckle, noise-floor, layer and texture statistics on real scans and on simulated ones, side by side.

Real: the shared data folder (Spectralis .vol read with the log display, Tian Spectralis PNGs, Duke
Bioptigen noisy frames and averages, single noisy b-scans of other scanners). Simulated: the default
HN/LN pairs (12 / 60 frames) and per-b-scan random draws (:func:`napari_hdcyclegan.simulate.random_params`).
Prints a markdown table: each cell is the median over the group's b-scans, with [min, max] below it.

usage: python scripts/calibrate_simulator.py [--data ../shared/data] [--n-sim 24] [--seed 0] [--show DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_hdcyclegan.speckle_stats import bscan_stats

ROWS = [  # (stat key, label)
    ("vitreous_noise", "vitreous noise (median local std of high-pass)"),
    ("retina_noise", "retina noise (median local std of high-pass)"),
    ("acf_axial_1", "speckle ACF axial lag 1"), ("acf_axial_2", "speckle ACF axial lag 2"),
    ("acf_axial_3", "speckle ACF axial lag 3"), ("acf_lateral_1", "speckle ACF lateral lag 1"),
    ("acf_lateral_2", "speckle ACF lateral lag 2"), ("acf_lateral_3", "speckle ACF lateral lag 3"),
    ("vitreous_mean", "noise floor: vitreous mean"), ("vitreous_p05", "noise floor: vitreous p5"),
    ("vitreous_p50", "noise floor: vitreous p50"), ("vitreous_p95", "noise floor: vitreous p95"),
    ("profile_-90", "profile: brightest band -90 px"), ("profile_-60", "profile: -60 px"),
    ("profile_-30", "profile: -30 px"), ("profile_-10", "profile: -10 px"), ("profile_+0", "profile: brightest band"),
    ("profile_+10", "profile: +10 px"), ("profile_+30", "profile: +30 px"), ("profile_+60", "profile: +60 px"),
    ("retina_mean", "retina mean level"), ("retina_local_std", "retina texture: local std 7x7"),
    ("retina_entropy", "retina texture: local entropy (bits)"),
    ("choroid_local_std", "choroid texture: local std 7x7"), ("choroid_entropy", "choroid texture: local entropy"),
]


def _read_gray(path: Path) -> np.ndarray:
    """A 2-D grey image in [0, 1] (8-bit files / 255, .vol through the log display)."""
    from napari_hdcyclegan.io import read_oct

    data = np.asarray(read_oct(path).data, dtype=np.float64)
    data = data[0] if data.ndim == 3 and data.shape[-1] not in (3, 4) else data
    data = data[..., 0] if data.ndim == 3 else data
    return data / 255.0 if data.max() > 1.0 + 1e-6 else data


def real_groups(root: Path) -> dict[str, list[Path]]:
    """Files of each real source in the shared data folder, by group name."""
    duke = sorted((root / "paired").glob("*/*"))
    return {
        "Spectralis .vol": sorted((root / "vendor").glob("*/*.vol")),
        "Spectralis Tian": sorted((root / "layers" / "tian2015_octlayers").glob("Subject*_0[15].png")),
        "Duke noisy": [p for d in duke for p in (d / "test.tif", d / "raw.tif") if p.is_file()],
        "Duke average": [d / "average.tif" for d in duke if (d / "average.tif").is_file()],
        "other noisy": sorted((root / "single_noisy").glob("*/*.*")),
    }


def sim_groups(n: int, seed: int) -> dict[str, list[np.ndarray]]:
    """Simulated b-scans: the default HN and LN (one eye per b-scan) and random per-b-scan draws."""
    from napari_hdcyclegan import simulate as sim

    hn, ln, rnd = [], [], []
    for i in range(n):
        b = sim.simulate_bscan(seed=seed + i)
        hn.append(b.hn)
        ln.append(b.ln)
        rnd.append(sim.simulate_random(seed=seed + i).hn)
    return {"sim default HN": hn, "sim default LN": ln, "sim random HN": rnd}


def _cell(values: list[float]) -> str:
    """Median [min, max] of the finite values."""
    v = np.array([x for x in values if np.isfinite(x)])
    if v.size == 0:
        return "-"
    return f"{np.median(v):.3f} [{v.min():.2f}, {v.max():.2f}]"


def table(stats: dict[str, list[dict[str, float]]]) -> str:
    """Markdown table: one row per statistic, one column per group."""
    groups = list(stats)
    lines = ["| statistic | " + " | ".join(f"{g} (n={len(stats[g])})" for g in groups) + " |",
             "|---|" + "---|" * len(groups)]
    for key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell([s[key] for s in stats[g]]) for g in groups) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the table."""
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    ap.add_argument("--n-sim", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=Path, default=None, help="save real | simulated pictures to this folder")
    a = ap.parse_args(argv)
    images = {g: [_read_gray(p) for p in ps] for g, ps in real_groups(a.data).items()}
    images.update(sim_groups(a.n_sim, a.seed))
    stats = {g: [bscan_stats(im) for im in ims] for g, ims in images.items() if ims}
    print(table(stats))
    if a.show is not None:
        save_pictures(images, a.show)


def save_pictures(images: dict[str, list[np.ndarray]], folder: Path) -> None:
    """One PNG per group: up to 6 b-scans resized to 496 x 512, in a 2 x 3 grid."""
    import imageio.v3 as iio
    from skimage.transform import resize

    folder.mkdir(parents=True, exist_ok=True)
    for g, ims in images.items():
        tiles = [resize(im, (496, 512), order=1, anti_aliasing=False) for im in ims[:6]]
        tiles += [np.zeros((496, 512))] * (6 - len(tiles))
        grid = np.vstack([np.hstack(tiles[:3]), np.hstack(tiles[3:])])
        name = g.replace(" ", "_").replace(".", "") + ".png"
        iio.imwrite(folder / name, (np.clip(grid, 0, 1) * 255).astype(np.uint8))


if __name__ == "__main__":
    main()
