"""Training data: simulated pairs, folders of b-scans per domain, the shared Duke pairs; crops.

All images are mapped to [0, 1] with :func:`napari_hdcyclegan.intensity.unit_range` under the
model's normalisation config, so that training sees exactly what inference will feed the model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_hdcyclegan.intensity import to_unit, unit_range
from napari_hdcyclegan.io.formats import IMAGE_SUFFIXES, TIFF_SUFFIXES

#: Duke / Fang 2013 pairs: test is never trained on nor used for choosing checkpoints.
DUKE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("dt1/S01", "dt1/S02", "dt1/S03", "dt1/S04", "train/T02", "train/T03", "train/T04",
              "train/T06", "train/T07"),
    "val": ("dt1/S05", "train/T09"),
    "test": ("dt1/S06", "dt1/S07", "dt1/S08", "dt1/S09"),
}
DUKE_DIRS = {"dt1": "duke_fang2013_dt1", "train": "duke_fang2013_train"}


class DataError(ValueError):
    """Training data that is missing, empty, unreadable or inconsistent."""


def default_duke_root() -> Path:
    """``shared/data/paired`` beside the repository, or ``$HDCYCLEGAN_DUKE_ROOT``."""
    env = os.environ.get("HDCYCLEGAN_DUKE_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "paired"


def read_image_stack(path: str | os.PathLike) -> list[np.ndarray]:
    """A TIFF (b-scan or volume) or PNG/JPEG b-scan as a list of 2D gray arrays."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            arr = tifffile.imread(path)
        else:
            from skimage import io

            arr = io.imread(path)
    except Exception as exc:  # any decoder failure is a data error for the user
        raise DataError(f"{path}: unreadable image ({exc})") from exc
    if arr.ndim in (3, 4) and arr.shape[-1] in (3, 4):  # colour samples last (b-scans are never 3-4 px wide)
        arr = _gray(arr)
    if arr.ndim == 2:
        return [arr]
    if arr.ndim == 3:
        return list(arr)
    raise DataError(f"{path}: expected a 2D b-scan or 3D volume, got shape {arr.shape}")


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Colour b-scans (..., 3|4) as gray by luminance, in their own dtype's range (uint8, uint16) or float32."""
    from skimage import util
    from skimage.color import rgb2gray

    lum = rgb2gray(rgb[..., :3])
    kept = {np.dtype(np.uint8): util.img_as_ubyte, np.dtype(np.uint16): util.img_as_uint}
    return kept.get(rgb.dtype, lambda a: a.astype(np.float32))(lum)


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def read_folder(folder: str | os.PathLike) -> list[np.ndarray]:
    """All b-scans of the TIFF/PNG/JPEG files in ``folder`` (one domain); same shape required."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise DataError(f"{folder}: no TIFF/PNG/JPEG images in the folder")
    images = [im for f in files for im in read_image_stack(f)]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{folder}: images have mixed shapes {sorted(shapes)}")
    return images


def duke_folders(split: str, root: str | os.PathLike | None = None) -> list[tuple[str, str, Path]]:
    """``(group, subject, folder)`` of every subject of a Duke split (group: ``dt1`` or ``train``)."""
    if split not in DUKE_SPLITS:
        raise DataError(f"unknown Duke split {split!r}; choose from {sorted(DUKE_SPLITS)}")
    root = Path(root) if root is not None else default_duke_root()
    return [(group, subject, root / DUKE_DIRS[group] / subject)
            for group, subject in (key.split("/") for key in DUKE_SPLITS[split])]


def duke_pairs(split: str, root: str | os.PathLike | None = None, extra_frames: bool = False
               ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, noisy, average)`` uint8 pairs of a Duke split; ``extra_frames`` adds 1..4.tif."""
    pairs = []
    for group, subject, folder in duke_folders(split, root):
        noisy_files = [folder / ("test.tif" if group == "dt1" else "raw.tif")]
        if extra_frames and group == "dt1":
            noisy_files += [folder / f"{k}.tif" for k in range(1, 5)]
        if not (folder / "average.tif").is_file():
            raise DataError(f"{folder}: Duke pair not found (set --duke-root)")
        average = read_image_stack(folder / "average.tif")[0]
        for f in noisy_files:
            if f.is_file():
                pairs.append((f"{subject}/{f.stem}", read_image_stack(f)[0], average))
    return pairs


def align_reference(noisy: np.ndarray, average: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """``average`` in the grey mapping of ``noisy``: ``a * average + b`` fitted on smoothed copies.

    The Duke averages were mapped to 8 bits per subject (S03's bright retina sits ~20 levels below
    its noisy frame's, the others within a few): a denoiser trained on them learns that mapping as
    well as the denoising. Fitting one affine map per pair on Gaussian-smoothed images (speckle and
    small misregistration averaged out) keeps the denoising and drops the subject's mapping. Returns
    float32 in the units of ``noisy``, unclipped.
    """
    from scipy.ndimage import gaussian_filter

    if noisy.shape != average.shape:
        raise DataError(f"noisy {noisy.shape} and average {average.shape} differ in shape")
    x = gaussian_filter(np.asarray(average, dtype=np.float64), sigma)
    y = gaussian_filter(np.asarray(noisy, dtype=np.float64), sigma)
    a, b = np.polyfit(x.ravel(), y.ravel(), 1) if np.ptp(x) > 0 else (np.nan, np.nan)
    if not (np.isfinite(a) and np.isfinite(b) and a > 0):
        raise DataError(f"cannot align the average to its noisy b-scan (fitted slope {a:.3g}): "
                        "flat or unrelated images")
    return (a * np.asarray(average, dtype=np.float64) + b).astype(np.float32)


def duke_targets(train: list[tuple[str, np.ndarray, np.ndarray]], normalisation: dict, align: bool = False
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Model-unit targets of Duke ``(name, noisy, average)`` pairs and one LN image per subject.

    ``align``: each average in its noisy frame's mapping (:func:`align_reference`); the subject's LN
    image is then its first frame's target, else its average as recorded.
    """
    targets = [to_model_units(align_reference(n, a) if align else a, normalisation, reference=n)
               for _, n, a in train]
    ln: dict[str, np.ndarray] = {}
    for (name, _, avg), target in zip(train, targets):
        subject = name.split("/")[0]
        if subject not in ln:
            ln[subject] = target if align else to_model_units(avg, normalisation)
    return targets, list(ln.values())


def to_model_units(image: np.ndarray, normalisation: dict, reference: np.ndarray | None = None) -> np.ndarray:
    """``image`` in [0, 1] float32 by the mapping of ``reference`` (default: itself)."""
    lo, hi = unit_range(image if reference is None else reference, normalisation)
    return to_unit(image, lo, hi)


@dataclass
class CropSampler:
    """Random crops + flips from lists of [0, 1] images; paired when ``targets`` is given.

    HN and LN crops are drawn independently (unpaired) for the cycle objective; ``paired_batch``
    takes the same window from an input and its target for supervised pre-training.
    """

    hn: list[np.ndarray]
    ln: list[np.ndarray]
    crop: int
    targets: list[np.ndarray] | None = None
    pair_inputs: list[np.ndarray] | None = None  # inputs of the pairs when they are not ``hn``
    # Paired crops times one gain, log-uniform in [1/(1+G), 1+G]: scanners and exports differ in
    # display gain, and a model that learned the noise in absolute grey levels under-denoises a dimmer scan.
    gain_jitter: float = 0.0
    # A share (shrink_share) of the paired crops from a window up to 1/S times larger both ways, shrunk to
    # the crop (0 = off): resized scans. Paired targets need no independent noise, so A-scans may be averaged too.
    pair_shrink: float = 0.0
    shrink_share: float = 0.5  # the share of paired crops shrunk when pair_shrink is on

    def __post_init__(self) -> None:
        for name, images in (("HN", self.hn), ("LN", self.ln)):
            if not images:
                raise DataError(f"no {name} images")
            small = [im.shape for im in images if min(im.shape) < self.crop]
            if small:
                raise DataError(f"{name} images {small[:3]} are smaller than the crop {self.crop}")
        if self.targets is not None and len(self.targets) != len(self.paired_inputs):
            raise DataError("paired data needs one target per input image")

    @property
    def paired_inputs(self) -> list[np.ndarray]:
        return self.hn if self.pair_inputs is None else self.pair_inputs

    def _window(self, image: np.ndarray, rng: np.random.Generator) -> tuple[slice, slice]:
        y = int(rng.integers(0, image.shape[0] - self.crop + 1))
        x = int(rng.integers(0, image.shape[1] - self.crop + 1))
        return slice(y, y + self.crop), slice(x, x + self.crop)

    @staticmethod
    def _flip(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        # Only left-right flips: OCT depth has a direction (vitreous on top), lateral does not.
        if rng.random() < 0.5:
            return [a[:, ::-1] for a in arrays]
        return arrays

    def _shrunk_window(self, image: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """One window of ``image`` and ``target``; a ``shrink_share`` of them up to 1/pair_shrink larger, shrunk."""
        scale = shrink_scale(rng, self.pair_shrink, self.shrink_share)
        size = [min(n, round(self.crop / scale)) for n in image.shape]
        y = int(rng.integers(0, image.shape[0] - size[0] + 1))
        x = int(rng.integers(0, image.shape[1] - size[1] + 1))
        win = slice(y, y + size[0]), slice(x, x + size[1])
        if size == [self.crop, self.crop]:
            return [image[win], target[win]]
        return [resized(a[win], (self.crop, self.crop)).astype(np.float32) for a in (image, target)]

    def unpaired_batch(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(h, l)`` float32 arrays of shape (batch, 1, crop, crop)."""
        h, l = [], []
        for _ in range(batch):
            im = self.hn[int(rng.integers(len(self.hn)))]
            h.append(self._flip([im[self._window(im, rng)]], rng)[0])
            im = self.ln[int(rng.integers(len(self.ln)))]
            l.append(self._flip([im[self._window(im, rng)]], rng)[0])
        return stack_crops(h), stack_crops(l)

    def paired_batch(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input, target)`` crops from the same window of a pair."""
        if self.targets is None:
            raise DataError("these data are unpaired: supervised pre-training needs pairs")
        x, y = [], []
        inputs = self.paired_inputs
        for _ in range(batch):
            i = int(rng.integers(len(inputs)))
            if self.pair_shrink > 0:  # drawn only when on: older recipes keep their random stream
                a, b = self._flip(self._shrunk_window(inputs[i], self.targets[i], rng), rng)
            else:
                win = self._window(inputs[i], rng)
                a, b = self._flip([inputs[i][win], self.targets[i][win]], rng)
            if self.gain_jitter > 0:  # drawn only when on: older recipes keep their random stream
                gain = float(np.exp(rng.uniform(-1, 1) * np.log1p(self.gain_jitter)))
                a, b = np.clip(a * gain, 0, 1), np.clip(b * gain, 0, 1)
            x.append(a)
            y.append(b)
        return stack_crops(x), stack_crops(y)


def shrink_scale(rng: np.random.Generator, smallest: float, share: float = 0.5) -> float:
    """The scale of one crop under a shrink option: uniform in [smallest, 1] with probability ``share``, else 1."""
    return 1.0 if rng.random() < 1.0 - share else float(rng.uniform(smallest, 1.0))


def resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` resampled to ``shape``: linear, anti-aliased along each axis it shrinks, values kept."""
    from skimage.transform import resize

    return resize(image, shape, order=1, anti_aliasing=True, preserve_range=True)


def shrunk_pairs(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], rows: float, cols: float
                 ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Each noisy b-scan and its reference shrunk alike by ``rows`` x ``cols`` (anti-aliased, dtype kept).

    A resized scan (a thumbnail, a dataset resized for a network): finer grain, A-scans averaged.
    """
    def shrink(im: np.ndarray) -> np.ndarray:
        out = resized(im.astype(np.float64), (max(1, round(im.shape[0] / rows)), max(1, round(im.shape[1] / cols))))
        if np.issubdtype(im.dtype, np.integer):
            info = np.iinfo(im.dtype)
            out = np.clip(np.round(out), info.min, info.max)
        return out.astype(im.dtype)

    return [(name, shrink(x), shrink(ref)) for name, x, ref in pairs]


def stack_crops(crops: list[np.ndarray]) -> np.ndarray:
    """2D crops as one contiguous float32 batch of shape (N, 1, H, W)."""
    return np.ascontiguousarray(np.stack(crops)[:, None], dtype=np.float32)
