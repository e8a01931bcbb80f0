"""Table-1 evaluation: the model and every baseline on paired HN/LN b-scans, one command.

``python -m training.evaluate [--data sim|duke|HN_DIR,LN_DIR] [--weights W] [--methods ...]
[--split test] [--out DIR] [--n N]`` denoises each noisy (HN) b-scan with the model and each
baseline, registers every output to the low-noise (LN) reference (real data; simulated outputs are
scored against the clean truth, already aligned), computes the signal/background masks once per pair,
prints mean ± std of CNR, MSR, PSNR and SSIM per method (plus the raw input), the profile change
(how much the method alters its input's mean A-scan profile around the brightest layer, in the input's
units; :mod:`napari_hdcyclegan.profiles`) and the seconds per b-scan each method took in this run,
and writes ``table.csv``, ``table.md``, ``scores.csv`` (per image) and ``examples.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_hdcyclegan import metrics, profiles
from napari_hdcyclegan.baselines import BASELINES, MissingExtraError, denoise_bm3d
from napari_hdcyclegan.io.formats import IMAGE_SUFFIXES

from .data import duke_pairs, shrunk_pairs
from .frames import MAX_GRAIN_PX, frame_average_pairs, registered_duke_pairs, synthetic_mean_pairs

Pair = tuple[str, np.ndarray, np.ndarray]
#: Metrics of the table, in the paper's column order.
TABLE_METRICS = ("CNR", "CNR_dB", "MSR", "PSNR", "SSIM")
#: The table's columns: the paper's metrics and how much a method changes its input's mean layer profile.
SUMMARY_METRICS = (*TABLE_METRICS, "profile_change")


def _read_2d(path: Path) -> np.ndarray:
    """A single 2D grey image from TIFF/PNG/JPEG (first page/channel)."""
    from skimage.io import imread

    try:
        img = np.asarray(imread(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear error
        raise ValueError(f"{path}: cannot read image ({exc})") from exc
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., 0]
    elif img.ndim == 3:
        img = img[0]
    if img.ndim != 2:
        raise ValueError(f"{path}: expected a 2D b-scan, got shape {img.shape}")
    return img


def load_folders(hn_dir: str | os.PathLike, ln_dir: str | os.PathLike) -> list[Pair]:
    """Pairs of same-named images in an HN folder and an LN folder."""
    hn, ln = Path(hn_dir), Path(ln_dir)
    for d in (hn, ln):
        if not d.is_dir():
            raise ValueError(f"{d}: not a folder")
    names = sorted(p.name for p in hn.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs = []
    for name in names:
        if not (ln / name).is_file():
            raise ValueError(f"{ln / name}: no LN image for {hn / name}")
        a, b = _read_2d(hn / name), _read_2d(ln / name)
        if a.shape != b.shape:
            raise ValueError(f"{name}: HN shape {a.shape} differs from LN shape {b.shape}")
        pairs.append((Path(name).stem, a, b))
    if not pairs:
        raise ValueError(f"{hn}: no images found")
    return pairs


def load_sim(n: int, shape: tuple[int, int] = (496, 512), seed: int = 1000,
             against: str = "clean") -> list[Pair]:
    """``n`` simulated (name, hn, reference) float pairs in [0, 1]; reference = clean truth or LN."""
    from napari_hdcyclegan.simulate import simulate_bscan

    pairs = []
    for i in range(n):
        s = simulate_bscan(seed=seed + i, shape=shape)
        ref = s.clean if against == "clean" else s.ln
        pairs.append((f"sim{seed + i}", np.asarray(s.hn, np.float32), np.asarray(ref, np.float32)))
    return pairs


#: Side of the crop each method is first called on, outside the timings.
WARMUP_PX = 32


def model_method(weights: str | os.PathLike | None, device: str = "auto", sample: np.ndarray | None = None
                 ) -> tuple[str, Callable[[np.ndarray], np.ndarray], dict]:
    """(label, denoise function, provenance) for the HDcycleGAN model; label says if untrained.

    With ``"auto"`` the model is chosen per b-scan; the label and provenance come from the model
    chosen for ``sample`` (the first b-scan evaluated: loaded anyway), so no model is loaded only
    for them.
    """
    from napari_hdcyclegan import engine

    w = weights if weights is not None else engine.DEFAULT_MODEL
    den = engine.get_denoiser(w, device, data=sample if str(w) == "auto" else None)
    label = "HDcycleGAN" if den.trained else "HDcycleGAN (untrained)"
    info = {"name": den.name, "trained": bool(den.trained), "device": str(den.device)}
    if str(w) != "auto":
        return label, den.denoise, info
    chosen: set[str] = set()

    def denoise(x: np.ndarray) -> np.ndarray:  # "auto": the model is chosen per b-scan, as the CLI does
        d = engine.get_denoiser(w, device, data=x)
        if max(x.shape) > WARMUP_PX:  # run_methods' warm-up crop is not an evaluated b-scan
            chosen.add(d.name)
        info["name"] = "auto: " + ", ".join(sorted(chosen))
        return d.denoise(x)

    return label, denoise, info


def run_methods(pairs: Sequence[Pair], methods: dict[str, Callable[[np.ndarray], np.ndarray]],
                align: bool, data_range: float | None = None, log: Callable[[str], None] = print
                ) -> tuple[list[dict], dict[str, float], dict[str, list[np.ndarray]]]:
    """Denoise and score every pair with every method; (per-image rows, s/b-scan, outputs)."""
    rows: list[dict] = []
    seconds = {name: 0.0 for name in methods}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in ["raw", *methods]}
    warmed = False
    for name, hn, ref in pairs:
        masks = metrics.signal_background_masks(ref)  # once per pair, reused for every method
        results = {"raw": hn}
        if not warmed:  # first calls pay imports and allocations: keep them out of the timings
            for fn in methods.values():
                fn(hn[:WARMUP_PX, :WARMUP_PX])
            warmed = True
        for method, fn in methods.items():
            t0 = time.perf_counter()
            results[method] = fn(hn)
            seconds[method] += time.perf_counter() - t0
        scores = metrics.score_methods(results, ref, masks=masks, data_range=data_range,
                                       align=align)
        guide = ref if ref.shape == hn.shape else None
        for method, sc in scores.items():
            sc["profile_change"] = profiles.mean_profile_change(results[method], hn, guide)
            rows.append({"image": name, "method": method, **sc})
            outputs[method].append(results[method])
        log(f"  {name}: " + ", ".join(f"{m} {s['PSNR']:.2f} dB/{s['SSIM']:.3f}"
                                      for m, s in scores.items()))
    sec = {m: seconds[m] / max(len(pairs), 1) for m in methods}
    return rows, sec, outputs


def summarise(rows: Sequence[dict], sec: dict[str, float]) -> list[dict]:
    """Mean and std per method of the table metrics, with seconds per b-scan."""
    table = []
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        entry: dict = {"method": method, "n": len(sel)}
        for m in SUMMARY_METRICS:
            vals = np.array([r[m] for r in sel], dtype=np.float64)
            entry[f"{m}_mean"], entry[f"{m}_std"] = float(np.mean(vals)), float(np.std(vals))
        entry["sec_per_bscan"] = sec.get(method, float("nan"))
        table.append(entry)
    return table


def to_markdown(table: Sequence[dict], title: str = "") -> str:
    """The summary as a Markdown table shaped like the paper's Table 1 (mean ± std)."""
    fmt = {"CNR": "{:.2f}", "CNR_dB": "{:.2f}", "MSR": "{:.2f}", "PSNR": "{:.2f}", "SSIM": "{:.3f}",
           "profile_change": "{:.2f}"}
    head = ["method", "CNR", "CNR (dB)", "MSR", "PSNR (dB)", "SSIM", "profile change", "s / b-scan"]
    lines = ([f"{title}", ""] if title else []) + [
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        cells = [e["method"]] + [
            f"{fmt[m].format(e[m + '_mean'])} ± {fmt[m].format(e[m + '_std'])}"
            for m in SUMMARY_METRICS]
        s = e["sec_per_bscan"]
        cells.append("-" if not np.isfinite(s) else f"{s:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """Rows of dicts as CSV (columns from the first row)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _zoom_box(ref: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of a zoom window centred on the retina's bright bands."""
    h, w = ref.shape
    try:
        signal, _ = metrics.signal_background_masks(ref)
        rows, cols = np.nonzero(signal)
        rc, cc = int(np.median(rows)), int(np.median(cols))
    except ValueError:
        rc, cc = h // 2, w // 2
    zh, zw = max(h // 5, 8), max(w // 3, 8)
    r0 = int(np.clip(rc - zh // 2, 0, h - zh))
    c0 = int(np.clip(cc + w // 8 - zw // 2, 0, w - zw))  # off-centre: avoids the foveal pit
    return r0, r0 + zh, c0, c0 + zw


def plot_examples(path: Path, pairs: Sequence[Pair], outputs: dict[str, list[np.ndarray]],
                  n_examples: int = 2) -> None:
    """PNG grid: per example b-scan a full row and a zoom row; columns raw / reference / methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(n_examples, len(pairs))
    cols = ["raw", "reference", *[m for m in outputs if m != "raw"]]
    h, w = pairs[0][2].shape
    r0, r1, c0, c1 = _zoom_box(pairs[0][2])
    zoom_ratio = (r1 - r0) / (c1 - c0)
    fig, axes = plt.subplots(2 * k, len(cols), squeeze=False,
                             figsize=(2.4 * len(cols), 2.4 * k * (h / w + zoom_ratio) + 0.5),
                             gridspec_kw={"height_ratios": [h / w, zoom_ratio] * k})
    for i in range(k):
        name, hn, ref = pairs[i]
        lo, hi = float(np.min(ref)), float(np.max(ref))
        r0, r1, c0, c1 = _zoom_box(ref)
        for j, col in enumerate(cols):
            img = ref if col == "reference" else outputs[col][i]
            full, zoom = axes[2 * i, j], axes[2 * i + 1, j]
            full.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect="auto")
            full.add_patch(plt.Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, ec="yellow", lw=0.8))
            zoom.imshow(img[r0:r1, c0:c1], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                        aspect="auto")
            for ax in (full, zoom):
                ax.set_xticks([]), ax.set_yticks([])
            for s in zoom.spines.values():
                s.set_edgecolor("yellow")
            if i == 0:
                full.set_title(col, fontsize=8)
            if j == 0:
                full.set_ylabel(name, fontsize=8)
                zoom.set_ylabel("zoom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="sim", help="sim (default), duke, or HN_DIR,LN_DIR")
    ap.add_argument("--weights", default=None, help="shipped model name or model directory")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", nargs="+", default=["model", *BASELINES],
                    choices=["model", *BASELINES])
    ap.add_argument("--split", default="test", help="Duke split: test (default), val or train")
    ap.add_argument("--frames", type=int, default=1,
                    help="Duke: denoise the mean of this many registered frames (2-5, dt1 subjects) instead of one")
    ap.add_argument("--every-frame", action="store_true",
                    help="Duke: every registered frame of the dt1 subjects (test: 20 b-scans), not only test.tif")
    ap.add_argument("--grain", type=float, default=None, metavar="PX",
                    help="Duke: every registered frame with its noise correlated along the A-scans by a Gaussian "
                         "of PX pixels (0.9: lag-1 correlation ~0.7, like most scanners) and divided by "
                         "sqrt(--frames): a correlated-speckle scan with a reference (frames.synthetic_mean_pairs)")
    ap.add_argument("--bm3d-scale", type=float, default=None, metavar="K",
                    help="BM3D with sigma = K x the noise estimate instead of the tuned default (the estimate "
                         "assumes white noise: correlated speckle needs more; the row is named 'bm3d xK')")
    ap.add_argument("--duke-root", default=None, help="folder holding duke_fang2013_* (Duke data)")
    ap.add_argument("--out", default="runs/evaluate", help="output folder")
    ap.add_argument("--n", type=int, default=None, help="use the first N pairs (sim default 8)")
    ap.add_argument("--shape", type=int, nargs=2, default=(496, 512), help="simulated b-scan shape")
    ap.add_argument("--seed", type=int, default=1000, help="first simulator seed (sim)")
    ap.add_argument("--against", choices=["clean", "ln"], default="clean",
                    help="simulated reference: clean truth (default) or the simulated LN")
    ap.add_argument("--register", choices=["auto", "yes", "no"], default="auto",
                    help="register outputs to the reference (auto: real data yes, clean truth no)")
    ap.add_argument("--examples", type=int, default=2, help="b-scans in examples.png")
    ap.add_argument("--shrink", default=None, metavar="ROWS[,COLS]",
                    help="shrink every b-scan and its reference by these factors (>= 1; one number: both axes), "
                         "as a resized scan")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and write table.csv, table.md, scores.csv and examples.png."""
    args = build_parser().parse_args(argv)
    most = 5 if args.grain is None else 100  # five real frames; --grain divides the noise instead
    if args.frames != 1 and (args.data != "duke" or not 1 <= args.frames <= most):
        print(f"--frames {args.frames}: needs --data duke and 1 to {most} frames", file=sys.stderr)
        return 2
    if args.every_frame and (args.data != "duke" or args.frames != 1):
        print("--every-frame: needs --data duke and single frames (--frames 1)", file=sys.stderr)
        return 2
    if args.bm3d_scale is not None and not args.bm3d_scale > 0:
        print(f"--bm3d-scale {args.bm3d_scale}: must be > 0", file=sys.stderr)
        return 2
    if args.grain is not None and (args.data != "duke" or args.every_frame or not 0 < args.grain <= MAX_GRAIN_PX):
        print(f"--grain {args.grain}: needs --data duke, no --every-frame (it uses every frame) and "
              f"0 < PX <= {MAX_GRAIN_PX:g}", file=sys.stderr)
        return 2
    if args.data == "sim":
        pairs = load_sim(args.n or 8, tuple(args.shape), args.seed, args.against)
        label = f"simulated ({args.n or 8} b-scans {args.shape[0]}x{args.shape[1]}, vs {args.against})"
        simulated_clean = args.against == "clean"
    elif args.data == "duke" and args.grain is not None:
        pairs = synthetic_mean_pairs(args.split, (args.frames,), args.duke_root, args.grain)
        label = (f"Duke / Fang 2013 {args.split} split, every registered frame, noise correlated axially "
                 f"({args.grain:g} px) and divided by sqrt({args.frames})")
        simulated_clean = False
    elif args.data == "duke" and args.frames > 1:
        pairs = frame_average_pairs(args.split, args.frames, args.duke_root)
        label = f"Duke / Fang 2013 {args.split} split, {args.frames}-frame averages (dt1 subjects)"
        simulated_clean = False
    elif args.data == "duke" and args.every_frame:
        pairs = registered_duke_pairs(args.split, args.duke_root)
        label = f"Duke / Fang 2013 {args.split} split, every registered frame"
        simulated_clean = False
    elif args.data == "duke":
        pairs = duke_pairs(args.split, args.duke_root)
        label = f"Duke / Fang 2013 {args.split} split"
        simulated_clean = False
    elif "," in args.data:
        hn_dir, ln_dir = args.data.split(",", 1)
        pairs = load_folders(hn_dir, ln_dir)
        label = f"pairs {hn_dir} / {ln_dir}"
        simulated_clean = False
    else:
        print(f"--data must be sim, duke or HN_DIR,LN_DIR, got {args.data!r}", file=sys.stderr)
        return 2
    if args.n is not None:
        pairs = pairs[: args.n]
    if args.shrink:
        try:
            factors = [float(v) for v in args.shrink.split(",")]
        except ValueError:
            factors = []
        if len(factors) not in (1, 2) or min(factors) < 1:
            print(f"--shrink {args.shrink}: one or two factors >= 1 (ROWS[,COLS])", file=sys.stderr)
            return 2
        pairs = shrunk_pairs(pairs, factors[0], factors[-1])
        label += f", shrunk {factors[0]:g} x {factors[-1]:g}"
    align = {"yes": True, "no": False}.get(args.register, not simulated_clean)

    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    notes: list[str] = []
    model_info: dict = {}
    for m in args.methods:
        if m == "model":
            name, fn, model_info = model_method(args.weights, args.device, pairs[0][1] if pairs else None)
            methods[name] = fn
        elif m == "bm3d":
            try:
                import bm3d  # noqa: F401 - only checks the optional extra is present
            except ImportError:
                notes.append("bm3d skipped: " + str(MissingExtraError(
                    'pip install "napari-hdcyclegan[bm3d]"')))
                continue
            if args.bm3d_scale is None:
                methods[m] = BASELINES[m]
            else:
                methods[f"bm3d x{args.bm3d_scale:g}"] = functools.partial(denoise_bm3d, sigma_scale=args.bm3d_scale)
        else:
            methods[m] = BASELINES[m]
    print(f"evaluating {len(pairs)} pairs: {label}; registration {'on' if align else 'off'}")
    for note in notes:
        print("note:", note)
    rows, sec, outputs = run_methods(pairs, methods, align)
    if "model" in args.methods:  # after the run: with "auto" the model is chosen per b-scan
        notes.insert(0, f"model {model_info['name']} on {model_info['device']}" + (
            "" if model_info["trained"] else ": UNTRAINED fallback (random weights, no trained model yet)"))
        print("note:", notes[0])
    table = summarise(rows, sec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = (f"Table 1 on {label} ({len(pairs)} pairs; CNR linear, CNR (dB) = 10 log10 CNR; "
             f"seconds per b-scan measured in this run)")
    md = to_markdown(table, title) + "".join(f"\nNote: {n}\n" for n in notes)
    print(md)
    write_csv(out / "table.csv", table)
    write_csv(out / "scores.csv", rows)
    (out / "table.md").write_text(md)
    plot_examples(out / "examples.png", pairs, outputs, args.examples)
    print(f"wrote {out / 'table.csv'}, {out / 'table.md'}, {out / 'scores.csv'}, "
          f"{out / 'examples.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
