"""Would column-split inference help? Full-width vs half-width inference of a model on the Tian scans.

``spectralis-real`` learned from column halves of real b-scans (Noise2Noise), i.e. at half the
lateral sampling of the scans it is later applied to. This script compares, on the Tian b-scans:

* ``full``: the generator on the whole b-scan, without the model's ``lateral_sigma`` smoothing
  (``scripts/lateral_sigma_check.py`` sweeps that);
* ``full+filter``: the same, then a lateral [1/4, 1/2, 1/4] filter (the smoothing part alone);
* ``column split``: the model on the even and on the odd columns separately, each result put back
  on its own columns, then the same lateral filter: the mean of two half-sampled estimates, each
  interpolated to the full grid.

It prints the layer CNR and contrast kept of ``real_scan_check.py`` (the shared tools folder), the
split PSNR of each method run on the column halves (the model then sees quarter sampling), and the
std of the 3-px smoothed residual raw - output (structure taken from the scan). Asserts nothing.

    python scripts/column_split_check.py [--weights spectralis-real] [--subjects 5] [--data DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from lateral_sigma_check import as_float, cached, tian  # the same directory
from scipy.ndimage import convolve1d

SHARED = Path(__file__).resolve().parents[2] / "shared"
LATERAL = [0.25, 0.5, 0.25]


def column_split(denoise, image: np.ndarray) -> np.ndarray:
    """Denoise even and odd columns separately, interleave, then the lateral filter."""
    out = np.empty(image.shape, np.float64)
    for start in (0, 1):
        out[:, start::2] = denoise(np.ascontiguousarray(image[:, start::2]))
    return convolve1d(out, LATERAL, axis=1, mode="nearest")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="spectralis-real")
    p.add_argument("--subjects", default="5", help="comma-separated Tian subjects (default 5, never trained on)")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared folder (with data/ and tools/)")
    a = p.parse_args()
    if not (a.data / "tools" / "real_scan_check.py").is_file():
        raise SystemExit(f"{a.data}: shared folder with tools/real_scan_check.py not found (pass --data)")
    from napari_hdcyclegan.engine import get_denoiser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        den = get_denoiser(a.weights, "cpu")
    den = den.with_lateral_sigma(0.0)  # the generator alone; the filters come below
    # every method denoises the same halves (a column split of a b-scan is its split-PSNR halves)
    model = cached(as_float(den.denoise))
    methods = {"full": model,
               "full+filter": lambda x: convolve1d(model(x), LATERAL, axis=1, mode="nearest"),
               "column split": lambda x: column_split(model, x)}
    print(f"{den.name}")
    tian(methods, [int(v) for v in a.subjects.split(",")], a.data)


if __name__ == "__main__":
    main()
