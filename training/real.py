"""Real scans for training: every noisy source in the shared data, Duke pairs, column-split pairs.

``--data real`` mixes three signals, all on real OCT:

- **Duke pairs** (Bioptigen noisy frame -> registered average): supervised L1, train split only.
- **Column-split pairs** (Noise2Noise from one scan): neighbouring A-scans carry nearly independent
  speckle, so the even- and odd-column halves of a noisy b-scan are two noisy views of almost the
  same scene; G_L maps one half to the other under MSE, which estimates the clean scene.
- **Unpaired domains** for the paper's objective: HN = every noisy real b-scan (Spectralis .vol and
  Tian scans, Duke single frames, the single noisy scans of other scanners); LN = the Duke averages
  plus every real scan as clean as they are (raw split PSNR >= ``ln_min_split_psnr``, 31 dB: the
  Duke averages measure 31.0-31.3 dB, a heavily averaged Spectralis line scan 33 dB), so that the
  discriminator sees low-noise scans of both scanner families, not "Bioptigen" as "low noise".

Held back, never trained on: Tian subject 5 (scored by split PSNR, as ``real_scan_check.py`` does)
and the Duke val/test subjects (val scored against its average; test used only by ``evaluate``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_hdcyclegan import metrics
from napari_hdcyclegan.column_pairs import full_crops, gap_columns, shifted_halves, split_crops

from .data import (
    DataError,
    duke_pairs,
    duke_targets,
    read_image_stack,
    resized,
    shrink_scale,
    stack_crops,
    to_model_units,
)
from .frames import registered_duke_pairs

#: Tian 2015 subjects used for training; subject 5 is the held-back validation subject.
TIAN_TRAIN = (1, 2, 3, 4)
TIAN_VAL = (5,)


def default_shared_data() -> Path:
    """``shared/data`` beside the repository, or ``$HDCYCLEGAN_SHARED_DATA``."""
    env = os.environ.get("HDCYCLEGAN_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def tian_scans(root: Path, subjects: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 b-scan)`` of the Tian 2015 Spectralis subjects."""
    folder = root / "layers" / "tian2015_octlayers"
    out = []
    for s in subjects:
        files = sorted(folder.glob(f"Subject{s}_*.png"))
        if not files:
            raise DataError(f"{folder}: no b-scans of Tian subject {s}")
        out += [(f"tian/{f.stem}", read_image_stack(f)[0]) for f in files]
    return out


def vendor_scans(root: Path) -> list[tuple[str, np.ndarray]]:
    """Display-domain float b-scans of the shared Heidelberg .vol files."""
    from napari_hdcyclegan.io import read_oct

    out = []
    for path in sorted((root / "vendor").glob("*/*.vol")):
        vol = np.asarray(read_oct(path).data)
        out += [(f"vol/{path.stem}/{i}", b) for i, b in enumerate(vol.reshape(-1, *vol.shape[-2:]))]
    return out


def single_noisy_scans(root: Path) -> list[tuple[str, np.ndarray]]:
    """The single noisy b-scans from other scanners (no reference)."""
    out = []
    for path in sorted((root / "single_noisy").glob("*/*")):
        if path.suffix.lower() in (".png", ".tif", ".tiff"):
            out += [(f"single/{path.parent.name}/{path.stem}", read_image_stack(path)[0])]
    return out


@dataclass
class RealSets:
    """Model-unit images of every real source, split into what trains and what validates."""

    noisy: list[tuple[str, np.ndarray]]  # every noisy training b-scan (HN domain, column-split source)
    pair_inputs: list[np.ndarray]
    pair_targets: list[np.ndarray]
    ln: list[np.ndarray]  # low-noise real b-scans (Duke averages)
    val_split: list[tuple[str, np.ndarray]]  # held-back noisy b-scans scored by split PSNR
    val_pairs: list[tuple[str, np.ndarray, np.ndarray]]  # held-back (noisy, average) pairs


def load_real(root: str | Path | None, normalisation: dict, duke_extra_frames: bool = True,
              ln_min_split_psnr: float = 31.0, duke: bool = True, duke_align: bool = False,
              hold_out: tuple[str, ...] = (), duke_register: bool = False) -> RealSets:
    """Every real source in the shared data folder, in model units (``duke=False``: no Duke scans).

    ``hold_out`` names noisy scans (e.g. ``single/se_despeckling/7``) moved from training to the
    split-PSNR validation set. ``duke_register``: every Duke dt1 frame and its average registered
    to the subject's ``test.tif`` (:func:`training.frames.registered_duke_pairs`).
    """
    root = Path(root) if root else default_shared_data()
    if not root.is_dir():
        raise DataError(f"{root}: shared data folder not found (set HDCYCLEGAN_SHARED_DATA)")
    unit = lambda im: to_model_units(im, normalisation)  # noqa: E731
    duke_train = [] if not duke else (registered_duke_pairs("train", root / "paired") if duke_register
                                      else duke_pairs("train", root / "paired", extra_frames=duke_extra_frames))
    noisy = [(n, unit(im)) for n, im in tian_scans(root, TIAN_TRAIN) + vendor_scans(root)
             + single_noisy_scans(root)]
    unknown = set(hold_out) - {n for n, _ in noisy}
    if unknown:
        raise DataError(f"cannot hold out {sorted(unknown)}: no such noisy scan (names as in the run description)")
    held = [(n, im) for n, im in noisy if n in hold_out]
    noisy = [(n, im) for n, im in noisy if n not in hold_out]
    noisy += [(f"duke/{n}", unit(x)) for n, x, _ in duke_train]
    pair_inputs = [unit(x) for _, x, _ in duke_train]
    pair_targets, duke_ln = duke_targets(duke_train, normalisation, duke_align)
    clean = [im for n, im in noisy if not n.startswith("duke/") and metrics.split_psnr(im) >= ln_min_split_psnr]
    val_split = [(n, unit(im)) for n, im in tian_scans(root, TIAN_VAL)] + held
    val_pairs = [(n, unit(x), to_model_units(a, normalisation, reference=x))
                 for n, x, a in (duke_pairs("val", root / "paired") if duke else [])]
    return RealSets(noisy, pair_inputs, pair_targets, duke_ln + clean, val_split, val_pairs)


@dataclass
class SplitSampler:
    """Noise2Noise crops from column halves: ``(input, target)`` = (even, odd) or (odd, even)."""

    images: list[np.ndarray]
    crop: int
    extra_noise: float = 0.0  # Noisier2Noise-style: up to this many times another scan's speckle on the input
    shrink: float = 0.0  # some crops (shrink_share) shrunk along the A-scans by a factor from [shrink, 1] (0 = off)
    shrink_share: float = 0.5  # the share of crops shrunk when shrink is on
    gap: int = 1  # the target half starts this many A-scans from the input's (column_pairs.shifted_halves)
    full_width: bool = True  # full-width crops are drawn too (the consistency term): every b-scan must hold one

    def __post_init__(self) -> None:
        self.halves = [shifted_halves(im, self.gap) for im in self.images]
        small = [h[0].shape for h in self.halves if min(h[0].shape) < self.crop]
        if small:
            raise DataError(f"column halves {small[:3]} are smaller than the crop {self.crop}")
        width = 2 * self.crop + gap_columns(self.gap)
        narrow = [im.shape for im in self.images if im.shape[1] < width] if self.full_width else []
        if narrow:
            raise DataError(f"b-scans {narrow[:3]} are narrower than a full-width crop ({width} A-scans)")
        if self.extra_noise > 0 and len(self.halves) < 2:
            raise DataError("extra noise on the Noise2Noise input needs at least two noisy scans")
        if not (self.shrink == 0 or 0 < self.shrink <= 1):
            raise DataError(f"shrink must be 0 (off) or in (0, 1], got {self.shrink}")

    def batch(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input, target)`` float32 arrays of shape (batch, 1, crop, crop)."""
        if self.shrink > 0:
            x, y, scans = self._shrunk_crops(rng, batch)
        else:
            x, y, scans = split_crops(rng, self.halves, (self.crop, self.crop), batch)
        if self.extra_noise > 0:
            # A child generator drawn after the crops: this batch's crops are those of a run without the
            # extra noise (later batches differ, one more number having been drawn).
            noise_rng = np.random.default_rng(int(rng.integers(2**62)))
            x = [pa + noise_rng.uniform(0, self.extra_noise) * self._speckle(noise_rng, i) for pa, i in zip(x, scans)]
        return stack_crops(x), stack_crops(y)

    def full_batch(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, list[int]]:
        """Full-width crops (batch, 1, crop, 2 x crop + column_pairs.gap_columns) and the input's column parity of
        each."""
        if not self.full_width:
            raise RuntimeError("this sampler was made without full-width crops (full_width=False)")
        if self.shrink == 0:
            return full_crops(rng, self.images, (self.crop, self.crop), batch, self.gap)
        out, parity = [], []
        for _ in range(batch):
            image = self.images[int(rng.integers(len(self.images)))]
            patch, p = full_crops(rng, [image], (self._window_rows(rng, image.shape[0]), self.crop), 1, self.gap)
            out.append(self._shrink_rows(patch[0, 0]))
            parity += p
        return np.stack(out)[:, None], parity

    def _shrunk_crops(self, rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
        """Column-half crops, a ``shrink_share`` of them from a taller window shrunk (:meth:`_shrink_rows`)."""
        xs, ys, picked = [], [], []
        for _ in range(n):
            i = int(rng.integers(len(self.halves)))
            window = (self._window_rows(rng, self.halves[i][0].shape[0]), self.crop)
            x, y, _ = split_crops(rng, [self.halves[i]], window, 1)
            xs.append(self._shrink_rows(x[0]))
            ys.append(self._shrink_rows(y[0]))
            picked.append(i)
        return xs, ys, picked

    def _window_rows(self, rng: np.random.Generator, height: int) -> int:
        """Rows of a crop window: the crop, or for a ``shrink_share`` of them up to ``crop / shrink`` (as ``height``
        allows)."""
        scale = shrink_scale(rng, self.shrink, self.shrink_share)
        return min(height, round(self.crop / scale))

    def _shrink_rows(self, patch: np.ndarray) -> np.ndarray:
        """``patch`` resampled to ``crop`` rows, anti-aliased along the A-scans only.

        Along the A-scans only: resampling across them would mix neighbouring A-scans' speckle, which the
        column-split pairs need independent. (A scan shrunk as a whole also has its A-scans averaged in
        pairs; its finer grain along the A-scans is what was measured to cost the network most.)
        """
        if patch.shape[0] == self.crop:
            return np.ascontiguousarray(patch, dtype=np.float32)
        return resized(patch, (self.crop, patch.shape[1])).astype(np.float32)

    def _speckle(self, rng: np.random.Generator, exclude: int) -> np.ndarray:
        """Real speckle without the scene: ``(even - odd) / sqrt 2`` of a random crop of a random scan.

        Neighbouring A-scans see nearly the same scene with independent speckle, so the difference of
        the column halves is noise with one half's variance and its axial/lateral correlation. It comes
        from another scan than the input's (``exclude``): the target's own noise must not leak into the
        input.
        """
        j = (exclude + 1 + int(rng.integers(len(self.halves) - 1))) % len(self.halves)
        a, b = self.halves[j]
        r = int(rng.integers(0, a.shape[0] - self.crop + 1))
        c = int(rng.integers(0, a.shape[1] - self.crop + 1))
        win = (slice(r, r + self.crop), slice(c, c + self.crop))
        return (a[win].astype(np.float32) - b[win]) / np.float32(np.sqrt(2.0))


def split_psnr(denoise: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> float:
    """Split PSNR (dB, [0, 1] images) of ``denoise`` on one noisy b-scan: see ``metrics.split_psnr``."""
    return metrics.split_psnr(image, denoise)
