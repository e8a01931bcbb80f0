"""Write napari_hdcyclegan/data/sim_sample.npz: a small precomputed simulated volume (8-bit, compressed).

Usage: python scripts/make_sample_data.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_hdcyclegan.simulate import SAMPLE_PATH, SAMPLE_SETTINGS, simulate_volume
from napari_hdcyclegan.simulate.cache import _save_npz_atomic

KEEP_BOUNDARIES = ("ILM", "RPE", "BM")


def main(argv: list[str] | None = None) -> None:
    """Simulate the sample volume with the fixed settings and store it as uint8 images."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    vol = simulate_volume(**SAMPLE_SETTINGS)
    to8 = {k: np.round(getattr(vol, k) * 255).astype(np.uint8) for k in ("hn", "ln", "clean")}
    arrays = {**to8, "metadata": np.array(json.dumps({**vol.metadata, "stored_as": "uint8 (x / 255)"}))}
    arrays.update({f"b_{k}": vol.boundaries[k].astype(np.float32) for k in KEEP_BOUNDARIES})
    _save_npz_atomic(args.out, arrays, compressed=True)
    size = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size:.2f} MB) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
