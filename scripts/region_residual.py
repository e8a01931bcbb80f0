"""Does a model lift or sink a region of a real scan? Mean residual (input - output) inside rectangles.

A smoothed residual picture can show a patch where the output is brighter or darker than the scan: a
level the network made up, or the speckle's own bias in a dim region. This prints the mean of
``input - output`` (8-bit grey levels) inside each rectangle for each model, beside BM3D's (``bm3d``):
a patch a model shares with BM3D is the noise's; one it does not share is the model's.

    python scripts/region_residual.py --scan vol/valid/0 --boxes 15:70,10:140 100:160,10:140 \
        --weights spectralis-real,runs/x/last,bm3d

Scan names are ``residual_check.py``'s (``tian/Subject5_04``, ``vol/valid/0``, ``single/se_despeckling/7``,
...); a box is ``ROW0:ROW1,COL0:COL1`` in the scan's pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse_box(text: str) -> tuple[slice, slice]:
    """``'r0:r1,c0:c1'`` as a pair of slices."""
    try:
        rows, cols = (tuple(int(v) for v in part.split(":")) for part in text.split(","))
        (r0, r1), (c0, c1) = rows, cols
    except ValueError:
        raise SystemExit(f"error: a box is ROW0:ROW1,COL0:COL1, got {text!r}") from None
    if r1 <= r0 or c1 <= c0 or min(r0, c0) < 0:
        raise SystemExit(f"error: box {text!r} is empty or negative")
    return slice(r0, r1), slice(c0, c1)


def region_means(output: np.ndarray, image: np.ndarray, boxes: list[tuple[slice, slice]]) -> list[float]:
    """Mean of ``image - output`` inside each box, in the images' units."""
    res = np.asarray(image, np.float64) - np.asarray(output, np.float64)
    return [float(res[b].mean()) for b in boxes]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scan", required=True, help="scan name, e.g. vol/valid/0")
    p.add_argument("--boxes", nargs="+", required=True, help="ROW0:ROW1,COL0:COL1 ...")
    p.add_argument("--weights", default="auto", help="comma-separated model names or folders; 'bm3d' for BM3D x5")
    p.add_argument("--data", type=Path, help="the shared data folder")
    a = p.parse_args(argv)
    from adapt_check import real_scans
    from residual_check import method

    from training.real import default_shared_data

    found = [im for name, im in real_scans(a.data or default_shared_data()) if name == a.scan]
    if not found:
        raise SystemExit(f"error: no scan named {a.scan!r} (names as in residual_check.py --per-scan)")
    image, boxes = found[0], [parse_box(b) for b in a.boxes]
    for b, text in zip(boxes, a.boxes):
        if b[0].stop > image.shape[0] or b[1].stop > image.shape[1]:
            raise SystemExit(f"error: box {text} lies outside the {image.shape[0]} x {image.shape[1]} scan")
    print(f"| weights | {' | '.join(a.boxes)} |\n|---|{'---:|' * len(boxes)}")
    print(f"| input level | {' | '.join(f'{255 * image[b].mean():.1f}' for b in boxes)} |")
    for weights in a.weights.split(","):
        means = region_means(method(weights, image)(image), image, boxes)
        print(f"| {weights} | {' | '.join(f'{255 * m:+.2f}' for m in means)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
