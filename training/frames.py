"""Averages of a few registered Duke frames: Bioptigen scans between single-frame and averaged noise.

Each Duke dt1 subject has five noisy frames of one scene (``test.tif``, ``1.tif`` .. ``4.tif``),
nearly registered to ``test.tif`` (S04's extra frames sit 3-6 rows off; lateral offsets of a few
columns are common), and an averaged reference. The mean of k of them is a
Bioptigen b-scan averaged over k frames: laterally independent speckle at a noise level the shared
data otherwise lacks (split PSNR 16-20 dB for k = 2-5). Two disjoint subsets of one subject's frames
are a Noise2Noise pair (same scene, independent speckle): :class:`FrameSampler`. ``training.evaluate
--frames K`` scores k-frame averages against the reference. :func:`synthetic_mean_pairs` makes any frame
look like a k-frame mean, optionally with the axially correlated grain of other scanners
(``training.evaluate --grain``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import ndimage

from .data import DataError, align_reference, duke_folders, duke_pairs, read_image_stack, stack_crops

N_FRAMES = 5
#: Widest axial grain (px) that synthetic means, ``training.evaluate --grain`` and the fit config accept.
MAX_GRAIN_PX = 5.0


def correlation_map(reference: np.ndarray, frame: np.ndarray, limit: tuple[int, int]) -> np.ndarray:
    """Pearson correlation of ``reference`` with ``frame`` moved by every whole-pixel (dr, dc) up to ``limit``.

    Entry ``[limit[0] + dr, limit[1] + dc]``; the reference's window is fixed (its border of ``limit`` + 1
    left out) and each moved window of ``frame`` brings its own mean and variance (box sums), so all
    shifts are scored alike. Computed with FFT correlation: the full 2-D search in a fraction of a second.
    """
    from scipy.signal import correlate

    ref, mov = (np.asarray(a, dtype=np.float64) for a in (reference, frame))
    if ref.shape != mov.shape:
        raise DataError(f"frames of different shapes {ref.shape} and {mov.shape}")
    mr, mc = limit[0] + 1, limit[1] + 1
    core = ref[mr:ref.shape[0] - mr, mc:ref.shape[1] - mc]
    core = core - core.mean()
    ones = np.ones_like(core)
    n = core.size
    num = correlate(mov, core, mode="valid", method="fft")
    s1 = correlate(mov, ones, mode="valid", method="fft")
    s2 = correlate(mov * mov, ones, mode="valid", method="fft")
    var = np.maximum(s2 - s1 * s1 / n, 0.0) * float((core * core).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(var > 0, num / np.sqrt(var), 0.0)  # a flat window correlates with nothing
    # valid index i moves the window to mov[i:], i.e. dr = mr - i: flip so that index = limit + dr
    return r[::-1, ::-1][1:-1, 1:-1]


def _shift(reference: np.ndarray, frame: np.ndarray, limit: tuple[int, int]) -> tuple[tuple[int, int], float]:
    """The whole-pixel (row, column) shift of ``frame`` that correlates best with ``reference``, and that correlation.

    Searched over every shift up to ``limit`` on smoothed copies (speckle would add noise to the
    score). Layers fix the axial shift sharply; the lateral optimum is broad, the scene changing
    slowly across A-scans. A shift at the search limit means the optimum may lie beyond it.
    """
    from scipy.ndimage import gaussian_filter

    smooth = lambda im: gaussian_filter(np.asarray(im, dtype=np.float64), 2.0)  # noqa: E731
    r = correlation_map(smooth(reference), smooth(frame), limit)
    i, j = np.unravel_index(int(np.argmax(r)), r.shape)
    return (int(i) - limit[0], int(j) - limit[1]), float(r[i, j])


def register_frames(frames: list[np.ndarray], limit: tuple[int, int] = (10, 24),
                    min_correlation: float = 0.5) -> np.ndarray:
    """``frames`` registered to the first by whole-pixel shifts, borders a shift exposes cut off.

    Whole pixels keep each frame's speckle as recorded (interpolating would smooth it), and the
    exhaustive search finds shifts that phase correlation (``metrics.register``) misses or rejects
    (S04's frame 4: 5 rows and 14 columns off; it returns no shift). Frames whose
    best shift reaches ``limit`` (rows, columns) or that correlate less than ``min_correlation`` with
    the first (Duke frames: 0.91-0.97 after smoothing) are not of one scene: an error, not a pair.
    """
    found = [_shift(frames[0], f, limit) for f in frames[1:]]
    shifts = [(0, 0)] + [s for s, _ in found]
    worst = min((r for _, r in found), default=1.0)
    if any(abs(r) >= limit[0] or abs(c) >= limit[1] for r, c in shifts) or worst < min_correlation:
        raise DataError(f"frames do not register within {limit} px (shifts {shifts}, "
                        f"lowest correlation {worst:.2f})")
    rows, cols = frames[0].shape
    top = max(max(r for r, _ in shifts), 0)
    bottom = rows + min(min(r for r, _ in shifts), 0)
    left = max(max(c for _, c in shifts), 0)
    right = cols + min(min(c for _, c in shifts), 0)
    out = [f[top - r:bottom - r, left - c:right - c] for f, (r, c) in zip(frames, shifts)]
    return np.stack(out)


def duke_frame_stacks(split: str, root: str | Path | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(subject, frames, average)`` of every dt1 subject of a Duke split: (5, H, W) registered frames.

    The average is cut to the registered frames' window (it is registered to ``test.tif``).
    """
    out = []
    for group, subject, folder in duke_folders(split, root):
        if group != "dt1":  # only the dt1 subjects have extra frames
            continue
        files = [folder / "test.tif"] + [folder / f"{k}.tif" for k in range(1, N_FRAMES)]
        missing = [f.name for f in files + [folder / "average.tif"] if not f.is_file()]
        if missing:
            raise DataError(f"{folder}: missing {', '.join(missing)} (set --duke-root)")
        frames = [read_image_stack(f)[0] for f in files]
        average = read_image_stack(folder / "average.tif")[0]
        stack = register_frames(frames + [average])
        out.append((subject, stack[:-1], stack[-1]))
    return out


def registered_duke_pairs(split: str, root: str | Path | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``duke_pairs(split, extra_frames=True)`` with every dt1 frame and its average registered to ``test.tif``.

    As shared, the extra frames are not all registered to the average: S04's frames 1, 2 and 4 sit
    6, 3 and 5 rows off. Unregistered, such a pair teaches the network to blur across layers.
    """
    stacks = {s: (frames, average) for s, frames, average in duke_frame_stacks(split, root)}
    out = []
    for name, noisy, average in duke_pairs(split, root, extra_frames=True):
        subject, stem = name.split("/")
        if subject in stacks:
            frames, average = stacks[subject]
            noisy = frames[0 if stem == "test" else int(stem)]
        out.append((name, noisy, average))
    return out


def frame_mean_pairs(split: str, root: str | Path | None = None, every: bool = False
                     ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Means of 2 to 5 of each dt1 subject's registered frames, with its average.

    ``every``: all 26 subsets per subject; else the first k frames and the last k (k = 2..4; one
    for k = 5), a few-frame average per subject that does not weight the dt1 subjects far above the
    single-frame pairs they are mixed with.
    """
    out = []
    for subject, frames, average in duke_frame_stacks(split, root):
        for k in range(2, N_FRAMES + 1):
            if every:
                picks = [list(p) for p in itertools.combinations(range(N_FRAMES), k)]
            else:
                picks = [list(range(k))] + ([list(range(N_FRAMES - k, N_FRAMES))] if k < N_FRAMES else [])
            for p in picks:
                out.append((f"{subject}/mean{k}_{''.join(map(str, p))}", frame_average(frames[p], k), average))
    return out


def synthetic_mean_pairs(split: str, ks: tuple[int, ...], root: str | Path | None = None,
                         axial_sigma: float = 0.0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every registered frame of a Duke split made to look like a mean of k frames, with its average.

    Input: the average in the frame's grey mapping plus the frame's own noise divided by sqrt(k)
    (``align_reference(frame, average) + (frame - it) / sqrt k``, rounded to the frame's 8 bits), for each
    k of ``ks``. Bioptigen noise is pixel-independent and nearly additive on the display scale, so this has
    a k-frame mean's noise level; it brings the single-frame subjects of the ``train`` set (T02-T07),
    which have no extra frames, into a few-frame model's training.

    ``axial_sigma`` > 0 first smooths the noise along each A-scan by a Gaussian of that many pixels and
    scales it back to its standard deviation: the grain of scanners whose speckle is correlated between
    vertically adjacent pixels (Spectralis and most others, lag-1 correlation 0.6-0.8; 0.9 px gives about
    0.7) and independent across A-scans, with a reference to score against.
    """
    out = []
    grain = f"_axial{axial_sigma:g}" if axial_sigma > 0 else ""
    for name, frame, average in registered_duke_pairs(split, root):
        reference = align_reference(frame, average).astype(np.float64)
        noise = correlated_axially(frame.astype(np.float64) - reference, axial_sigma)
        for k in ks:
            mean = np.clip(np.rint(reference + noise / np.sqrt(k)), 0, np.iinfo(frame.dtype).max)
            out.append((f"{name}/synthetic{k}{grain}", mean.astype(frame.dtype), average))
    return out


def correlated_axially(noise: np.ndarray, sigma: float) -> np.ndarray:
    """``noise`` smoothed along axis 0 by a Gaussian of ``sigma`` px, rescaled to its own standard deviation."""
    if sigma <= 0:
        return noise
    smooth = ndimage.gaussian_filter1d(noise, sigma, axis=0)
    return smooth * (noise.std() / max(float(smooth.std()), 1e-12))


def frame_average(frames: np.ndarray, k: int) -> np.ndarray:
    """The mean of the first ``k`` frames, rounded to the frames' integer type as a scanner would store it."""
    if not 1 <= k <= len(frames):
        raise DataError(f"cannot average {k} of {len(frames)} frames")
    mean = frames[:k].astype(np.float64).mean(axis=0)
    if np.issubdtype(frames.dtype, np.integer):
        info = np.iinfo(frames.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(frames.dtype)
    return mean.astype(frames.dtype)


def frame_average_pairs(split: str, k: int, root: str | Path | None = None
                        ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, k-frame average, reference)`` of a Duke split's dt1 subjects."""
    return [(f"{s}/mean{k}", frame_average(frames, k), avg) for s, frames, avg in duke_frame_stacks(split, root)]


@dataclass
class FrameSampler:
    """Noise2Noise crops from registered frame stacks: mean of k frames -> mean of the others.

    k is drawn from 1 .. F-1 per crop and the frames are shuffled, so the input ranges from one frame
    to all but one; the target (the remaining frames' mean) has the same scene and independent speckle.
    ``stacks``: model-unit float arrays (F, H, W).
    """

    stacks: list[np.ndarray]
    crop: int

    def __post_init__(self) -> None:
        if not self.stacks:
            raise DataError("no frame stacks")
        bad = [s.shape for s in self.stacks if s.ndim != 3 or len(s) < 2 or min(s.shape[1:]) < self.crop]
        if bad:
            raise DataError(f"frame stacks {bad[:3]}: need 2+ frames of at least the crop {self.crop}")

    def batch(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input, target)`` float32 arrays of shape (batch, 1, crop, crop)."""
        x, y = [], []
        for _ in range(batch):
            stack = self.stacks[int(rng.integers(len(self.stacks)))]
            order = rng.permutation(len(stack))
            k = int(rng.integers(1, len(stack)))
            r = int(rng.integers(0, stack.shape[1] - self.crop + 1))
            c = int(rng.integers(0, stack.shape[2] - self.crop + 1))
            win = stack[:, r:r + self.crop, c:c + self.crop]
            a, b = win[order[:k]].mean(axis=0), win[order[k:]].mean(axis=0)
            if rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            x.append(a)
            y.append(b)
        return stack_crops(x), stack_crops(y)


class PairSampler(Protocol):
    """Anything that draws ``(input, target)`` crop batches."""

    def batch(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class MixedSampler:
    """Noise2Noise crops from two samplers: each crop from ``second`` with probability ``p``."""

    first: PairSampler
    second: PairSampler
    p: float

    def batch(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input, target)`` float32 arrays of shape (batch, 1, crop, crop)."""
        parts = [(self.second if rng.random() < self.p else self.first).batch(rng, 1)
                 for _ in range(batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
