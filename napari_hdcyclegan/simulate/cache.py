"""On-disk cache of simulated pairs and the shipped sample volume."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_output
from .api import SIM_VERSION, SimulatedVolume, simulate_pairs, simulate_volume


def default_cache_dir() -> Path:
    """Simulation cache: ``$NAPARI_HDCYCLEGAN_CACHE/sim``, else the user cache dir's ``sim`` folder."""
    root = os.environ.get("NAPARI_HDCYCLEGAN_CACHE")
    if not root:
        from platformdirs import user_cache_dir

        root = user_cache_dir("napari-hdcyclegan", appauthor=False)
    return Path(root) / "sim"


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray], compressed: bool = False) -> None:
    """Write an .npz through a temporary file renamed into place, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    named: dict[str, Any] = dict(arrays)  # keyword names are the archive's member names
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        if compressed:
            np.savez_compressed(fh, **named)
        else:
            np.savez(fh, **named)


def _volume_to_arrays(vol: SimulatedVolume) -> dict[str, np.ndarray]:
    """Flatten a volume into npz arrays (boundaries prefixed ``b_``, metadata as JSON)."""
    out = {"hn": vol.hn, "ln": vol.ln, "clean": vol.clean, "metadata": np.array(json.dumps(vol.metadata))}
    out.update({f"b_{k}": v for k, v in vol.boundaries.items()})
    return out


def _volume_from_npz(path: Path) -> SimulatedVolume:
    """Read a volume written by :func:`_volume_to_arrays` (uint8 images are scaled to [0, 1])."""
    with np.load(path, allow_pickle=False) as z:
        imgs = {}
        for k in ("hn", "ln", "clean"):
            a = z[k]
            imgs[k] = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
        bounds = {k[2:]: z[k].astype(np.float32) for k in z.files if k.startswith("b_")}
        meta = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    return SimulatedVolume(imgs["hn"], imgs["ln"], imgs["clean"], bounds, meta)



def cached_pairs(n: int = 8, seed: int = 0, shape: tuple[int, int] = (496, 512), hn_frames: int = 12,
                 ln_frames: int = 60, cache_dir: str | os.PathLike | None = None, bscans_per_eye: int | None = 8,
                 **kwargs) -> SimulatedVolume:
    """:func:`simulate_pairs` through an on-disk cache: one .npz per setting, written atomically.

    ``n`` b-scans, ``bscans_per_eye`` per simulated eye (None: one eye, i.e. :func:`simulate_volume`).
    ``kwargs`` go to :func:`simulate_volume` (mismatch, pathology, rho, ...) and are part of the key.
    Cache folder: ``cache_dir``, else :func:`default_cache_dir` (env ``NAPARI_HDCYCLEGAN_CACHE``).
    """
    key = {"n": int(n), "seed": int(seed), "shape": [int(s) for s in shape], "hn": int(hn_frames),
           "ln": int(ln_frames), "per_eye": bscans_per_eye, "version": SIM_VERSION,
           **{k: kwargs[k] for k in sorted(kwargs)}}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"sim_n{n}_s{seed}_{shape[0]}x{shape[1]}_hn{hn_frames}_ln{ln_frames}_{digest}.npz"
    if path.is_file():
        try:
            return _volume_from_npz(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # JSONDecodeError is a ValueError
            pass  # a corrupt cache file is regenerated below
    vol = simulate_pairs(n, seed, shape, hn_frames, ln_frames, bscans_per_eye, **kwargs)
    _save_npz_atomic(path, _volume_to_arrays(vol))
    return vol


SAMPLE_PATH = Path(__file__).resolve().parent.parent / "data" / "sim_sample.npz"
#: Settings of the shipped sample volume (scripts/make_sample_data.py).
SAMPLE_SETTINGS: dict[str, Any] = {"n_bscans": 5, "seed": 2019, "shape": (496, 512), "hn_frames": 12, "ln_frames": 60,
                   "spacing_um": 120.0}


def load_sample_volume(path: str | os.PathLike | None = None) -> SimulatedVolume:
    """The shipped precomputed sample volume (8-bit images), simulated afresh if the file is missing."""
    p = Path(path) if path is not None else SAMPLE_PATH
    if p.is_file():
        return _volume_from_npz(p)
    return simulate_volume(**SAMPLE_SETTINGS)
