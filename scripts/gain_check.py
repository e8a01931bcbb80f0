"""Does a model still denoise a dimmer or brighter export of the same scan? A display-gain sweep.

Scanners and export settings differ in display gain: the same eye can come out 15-30 % dimmer. Each
noisy b-scan is multiplied by a gain, rounded back to its 8 bits, denoised, and the output divided by
the gain again, so every gain is scored against the same averaged reference (PSNR / SSIM, after the
registration ``training.evaluate`` uses). A model that is robust scores about the same at every gain.
``--tian SUBJECT`` scores labelled Spectralis b-scans without a reference instead: the split PSNR gain
over the raw scan at each gain (the model run on column halves, as ``real_scan_check.py`` does).
Asserts nothing. Examples (the numbers in docs/real_training.md, section 11)::

    python scripts/gain_check.py --weights bioptigen-duke --split val --gains 0.7,0.85,1,1.2
    python scripts/gain_check.py --weights spectralis-real --tian 5 --gains 0.7,0.85,1
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_hdcyclegan.engine import get_denoiser
from napari_hdcyclegan.metrics import score_methods, split_psnr
from training.data import duke_pairs, read_image_stack
from training.frames import frame_average_pairs
from training.real import default_shared_data

SHARED = default_shared_data()


def _scaled(bscan: np.ndarray, gain: float) -> np.ndarray:
    """``bscan`` times ``gain``, rounded back to 8 bits (as a dimmer or brighter export would be)."""
    return np.clip(np.rint(bscan.astype(np.float64) * gain), 0, 255).astype(np.uint8)


def gain_scores(denoise: Callable[[np.ndarray], np.ndarray], noisy: np.ndarray, reference: np.ndarray,
                gain: float) -> tuple[float, float]:
    """PSNR / SSIM against ``reference`` of ``denoise(gain x noisy) / gain`` (8-bit in, 8-bit out)."""
    out = np.clip(denoise(_scaled(noisy, gain)).astype(np.float64) / gain, 0, 255)
    row = score_methods({"model": out}, reference.astype(np.float64), data_range=255.0)["model"]
    return row["PSNR"], row["SSIM"]


def tian_gain(denoise: Callable[[np.ndarray], np.ndarray], bscan: np.ndarray, gain: float) -> float:
    """Split PSNR after denoising minus that of the raw scan, on ``bscan`` times ``gain`` (8-bit)."""
    scaled = _scaled(bscan, gain)
    return split_psnr(scaled, denoise, 255.0) - split_psnr(scaled, None, 255.0)


def _tian(den: Any, subject: int, gains: list[float]) -> None:
    files = sorted((SHARED / "layers" / "tian2015_octlayers").glob(f"Subject{subject}_*.png"))
    table = np.array([[tian_gain(den.denoise, read_image_stack(f)[0], g) for g in gains] for f in files])
    print(f"Tian subject {subject} ({len(files)} b-scans): split PSNR gain over raw (dB) per display gain")
    print(" | ".join(f"gain {g:g}: {v:.2f}" for g, v in zip(gains, table.mean(axis=0))))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="bioptigen-duke", help="shipped model name or model folder")
    p.add_argument("--split", default="val", help="Duke split: val (default), train or test")
    p.add_argument("--gains", default="0.7,0.85,1,1.2", help="comma-separated display gains")
    p.add_argument("--tian", type=int, help="a Tian 2015 subject (1-5) instead of the Duke pairs")
    p.add_argument("--extra-frames", action="store_true", help="also the four extra frames of dt1 subjects")
    p.add_argument("--frames", type=int, default=1, help="the mean of this many registered frames (dt1 subjects)")
    args = p.parse_args(argv)
    gains = [float(g) for g in args.gains.split(",")]
    den = get_denoiser(args.weights)
    if args.tian:
        _tian(den, args.tian, gains)
        return
    pairs = (frame_average_pairs(args.split, args.frames) if args.frames > 1
             else duke_pairs(args.split, extra_frames=args.extra_frames))
    table = np.array([[gain_scores(den.denoise, n, a, g) for g in gains] for _, n, a in pairs])
    print(f"{args.weights} on Duke {args.split} ({len(pairs)} b-scans): PSNR (dB) / SSIM per display gain")
    print("| b-scan | " + " | ".join(f"gain {g:g}" for g in gains) + " |")
    print("|---" * (len(gains) + 1) + "|")
    for (name, _, _), row in zip(pairs, table):
        print(f"| {name} | " + " | ".join(f"{s[0]:.2f} / {s[1]:.3f}" for s in row) + " |")
    mean = table.mean(axis=0)
    print("| mean | " + " | ".join(f"{s[0]:.2f} / {s[1]:.3f}" for s in mean) + " |")


if __name__ == "__main__":
    main()
