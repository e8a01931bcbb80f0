"""Where does a candidate sit against the lateral-smoothing curve on the Tian b-scans?

On the labelled Tian b-scans (the shared tool ``real_scan_check.py``'s measures) more lateral smoothing
after the generator trades split PSNR for layer CNR along one curve. Sections 25-35 of
docs/real_training.md found most model changes moving along that curve rather than past it. This script
draws the curve (the reference model, default ``spectralis-real``, at ``--sigmas``) and places on it:

* ``--weights W ...``: other models, each with its own ``lateral_sigma``;
* ``--residual-scale K,...``: the reference's residual scaled, ``raw + K (output - raw)``;
* ``--mix W:F,...``: ``(1 - F) reference + F W``, the two models' outputs mixed;
* ``--wiener S,PX,C``: the reference at lateral sigma S, then ``lateral_sigma_check.local_wiener``;
* BM3D x5, from the shared tool's ``--cache`` file (b-scans not in it are left out of that row).

Per row: split PSNR and layer CNR (means over the b-scans) and ``off``: its CNR minus the curve's at the
same split PSNR (linear between the curve's points; blank outside them). ``off`` > 0 is past the
curve: more layer contrast for the same fidelity to the other column half. Asserts nothing::

    python scripts/tradeoff_curve.py --subjects 5 --cache BM3D_CACHE.json --weights RUN_EXPORT
    python scripts/tradeoff_curve.py --subjects 5 --residual-scale 1.1,1.2 --mix RUN_EXPORT:0.25,0.5
    python scripts/tradeoff_curve.py --subjects 5 --wiener 2,6,1.5 --wiener 1.7,3,1.5
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lateral_sigma_check as lsc  # noqa: E402 - a sibling script: its sweep runs the generator once per image

SHARED = Path(__file__).resolve().parents[2] / "shared"
Denoise = Callable[[np.ndarray], np.ndarray]


def curve_cnr(curve: Sequence[tuple[float, float]], split: float) -> float:
    """The curve's layer CNR at ``split`` PSNR, linear between its (split, CNR) points; NaN outside them.

    ``curve`` is in the order of the smoothing that draws it, and its split PSNR must fall strictly along
    it (ValueError otherwise): a curve that turns back has no single CNR at a split PSNR.
    """
    pts = np.array(curve, dtype=np.float64).reshape(-1, 2)
    if np.any(np.diff(pts[:, 0]) >= 0):
        raise ValueError(f"the curve's split PSNR does not fall strictly with the smoothing: {pts[:, 0].round(3)}")
    if len(pts) < 2 or not pts[-1, 0] <= split <= pts[0, 0]:
        return float("nan")
    return float(np.interp(split, pts[::-1, 0], pts[::-1, 1]))


def residual_scaled(fn: Denoise, k: float) -> Denoise:
    """``raw + k (fn(raw) - raw)``, clipped to the input's own range of values (an 8-bit scan: what it holds
    of 0-255), as the denoiser's output stays within its mapping."""
    def run(x: np.ndarray) -> np.ndarray:
        raw = x.astype(np.float64)
        return np.clip(raw + k * (fn(x) - raw), raw.min(), raw.max())
    return run


def mixed(a: Denoise, b: Denoise, f: float) -> Denoise:
    """``(1 - f) a + f b``."""
    return lambda x: (1.0 - f) * a(x) + f * b(x)


def score(fn: Denoise, scans: list, rc) -> tuple[float, float]:
    """Mean split PSNR and mean layer CNR of ``fn`` over ``scans`` (the shared tool's measures)."""
    split, cnr = [], []
    for _, im, lab in scans:
        split.append(rc.split_psnr(*(fn(h) for h in rc.halves(im)), im))
        cnr.append(float(np.mean(rc.layer_stats(fn(im), rc.bands_of(lab, im.shape[0]))[0])))
    return float(np.mean(split)), float(np.mean(cnr))


def bm3d_row(scans: list, cache: dict, mult: float) -> tuple[float, float, int] | None:
    """BM3D's split PSNR and layer CNR from the shared tool's cache, and how many b-scans it had."""
    hits = [cache[f"{name}/x{mult:g}"] for name, _, _ in scans if f"{name}/x{mult:g}" in cache]
    if not hits:
        return None
    return float(np.mean([h[2] for h in hits])), float(np.mean([np.mean(h[0]) for h in hits])), len(hits)


def parse_mix(text: str) -> tuple[str, list[float]]:
    """``W:F1,F2`` to (W, [F1, F2]); each F in [0, 1]."""
    weights, _, fractions = text.rpartition(":")
    try:
        fs = [float(f) for f in fractions.split(",")]
    except ValueError:
        fs = []
    if not weights or not fs or not all(0.0 <= f <= 1.0 for f in fs):
        raise argparse.ArgumentTypeError(f"--mix {text!r}: expected WEIGHTS:F[,F...] with each F in [0, 1]")
    return weights, fs


def floats(text: str) -> list[float]:
    """A comma-separated list of numbers."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", default="spectralis-real", help="the model whose smoothing draws the curve")
    p.add_argument("--sigmas", type=floats, default=[0.8, 1.1, 1.3, 1.5, 1.7, 2.0],
                   help="the curve's lateral smoothing, increasing (px)")
    p.add_argument("--weights", nargs="*", default=[], help="models placed on the curve")
    p.add_argument("--residual-scale", type=floats, default=[])
    p.add_argument("--mix", type=parse_mix, action="append", default=[])
    p.add_argument("--wiener", type=lsc.wiener_spec, action="append", default=[], metavar="S,PX,C",
                   help="the reference at lateral sigma S, then a local Wiener correction (window PX, noise C)")
    p.add_argument("--subjects", default="5", help="Tian subjects, comma-separated")
    p.add_argument("--cache", type=Path, help="the shared tool's BM3D cache (JSON) for the BM3D row")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared folder (with data/ and tools/)")
    a = p.parse_args()
    if len(a.sigmas) < 2 or np.any(np.diff(a.sigmas) <= 0):
        p.error(f"--sigmas: at least two, increasing, got {a.sigmas}")
    if not (a.data / "tools" / "real_scan_check.py").is_file():
        raise SystemExit(f"{a.data}: shared folder with tools/real_scan_check.py not found (pass --data)")
    sys.path.insert(0, str(a.data / "tools"))
    import real_scan_check as rc

    from napari_hdcyclegan.engine import get_denoiser

    root = a.data / "data" / "layers" / "tian2015_octlayers"
    scans = [s for subject in a.subjects.split(",") for s in rc.load_subject(str(root), int(subject))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = get_denoiser(a.reference, "cpu")
        others = {w: get_denoiser(w, "cpu") for w in {*a.weights, *(w for w, _ in a.mix)}}
    own = lsc.cached(lsc.as_float(ref.denoise), 64)
    rows: dict[str, tuple[float, float]] = {}
    curve = [score(fn, scans, rc) for fn in lsc.sweep(ref, a.sigmas).values()]
    for s, point in zip(a.sigmas, curve):
        rows[f"{a.reference} sigma {s:g} (curve)"] = point
    for w in a.weights:
        rows[f"{w} (its sigma {others[w].config.lateral_sigma:g})"] = score(lsc.as_float(others[w].denoise), scans, rc)
    for k in a.residual_scale:
        rows[f"{a.reference}, residual x {k:g}"] = score(residual_scaled(own, k), scans, rc)
    for w, fs in a.mix:
        theirs = lsc.cached(lsc.as_float(others[w].denoise), 64)
        for f in fs:
            rows[f"{a.reference} mixed with {f:g} of {w}"] = score(mixed(own, theirs, f), scans, rc)
    for sigma, px, c in a.wiener:
        fn = lsc.sweep(ref, [sigma], wiener=[(px, c)])[f"sigma {sigma:4.2f} + wiener {px:g} px / {c:g}"]
        rows[f"{a.reference} sigma {sigma:g}, then wiener {px:g} px / {c:g}"] = score(fn, scans, rc)
    cache = json.loads(a.cache.read_text()) if a.cache and a.cache.is_file() else {}
    bm3d = bm3d_row(scans, cache, rc.BM3D_MULT)
    if bm3d is not None:
        rows[f"BM3D x{rc.BM3D_MULT:g} ({bm3d[2]} of {len(scans)} b-scans, cached)"] = bm3d[:2]
    print(f"Tian subjects {a.subjects}, {len(scans)} b-scans: split PSNR (dB) / layer CNR / off the curve")
    for name, (split, cnr) in rows.items():
        off = cnr - curve_cnr(curve, split)
        print(f"  {name}: {split:.3f} / {cnr:.3f} / {'' if np.isnan(off) else f'{off:+.3f}'}")


if __name__ == "__main__":
    main()
