"""Noise2Noise pairs from one noisy b-scan: its even- and odd-column halves.

Neighbouring A-scans carry nearly independent speckle, so the two column halves of a b-scan are two
noisy views of almost the same scene. They are not exactly the same scene: each half is shifted by
half a (half-width) column against the other, and a network trained to map one onto the other learns
that shift as a lateral blur, which shows as lines along steep layer edges in the residual. The
Neighbor2Neighbor consistency term (Huang et al., CVPR 2021) corrects for it: the difference the
network's own full-width output shows between the two column parities is what the half-to-half
mapping should keep, not average away. An optional layer-profile term (:func:`lateral_mean_loss`)
weighs the depth profile averaged across A-scans, which the per-pixel term lets the network flatten.

With a ``gap`` of 3 (5, ...) the target half starts that many A-scans from the input's instead of one
(input columns 0, 2, 4, ... against 3, 5, 7, ...): where neighbouring A-scans share part of their speckle
(the Spectralis scans), the target then shares less of it, and less of it is learnt as scene.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .noise_measures import column_halves


def split_crops(rng: np.random.Generator, pairs: list[tuple[np.ndarray, np.ndarray]], crop: tuple[int, int],
                n: int) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """``n`` Noise2Noise crops from column-half pairs: (inputs, targets, pair index of each).

    One half in, the other out, either way round, flipped left-right half the time
    (``training.real.SplitSampler`` draws its crops with it).
    """
    xs, ys, picked = [], [], []
    for _ in range(n):
        picked.append(int(rng.integers(len(pairs))))
        a, b = pairs[picked[-1]]
        if rng.random() < 0.5:
            a, b = b, a
        r = int(rng.integers(0, a.shape[0] - crop[0] + 1))
        c = int(rng.integers(0, a.shape[1] - crop[1] + 1))
        pa, pb = a[r:r + crop[0], c:c + crop[1]], b[r:r + crop[0], c:c + crop[1]]
        if rng.random() < 0.5:
            pa, pb = pa[:, ::-1], pb[:, ::-1]
        xs.append(pa)
        ys.append(pb)
    return xs, ys, picked


MAX_GAP = 9


def check_gap(gap: int) -> int:
    """``gap`` as an int: odd, from 1 (neighbouring columns) to :data:`MAX_GAP`; ValueError otherwise."""
    if isinstance(gap, bool) or int(gap) != gap or not 1 <= gap <= MAX_GAP or gap % 2 == 0:
        raise ValueError(f"the column gap must be odd, from 1 to {MAX_GAP}, got {gap!r}")
    return int(gap)


def gap_columns(gap: int) -> int:
    """Columns a full-width crop has beyond two column halves: 0 for a gap of 1, else 8 (a network's
    stride: the whole crop stays a multiple of 8 wide when the half is)."""
    return 0 if check_gap(gap) == 1 else 8


def shifted_halves(image: np.ndarray, gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Column halves ``gap`` A-scans apart, cropped to the same width: even columns 0, 2, ... and odd
    columns ``gap``, ``gap`` + 2, ... (``gap`` 1: :func:`napari_hdcyclegan.metrics.column_halves`)."""
    even, odd = column_halves(image)
    s = (check_gap(gap) - 1) // 2
    if s >= even.shape[1]:
        raise ValueError(f"a b-scan {np.shape(image)[1]} A-scans wide has no columns {gap} apart")
    return (even[:, :even.shape[1] - s], odd[:, s:]) if s else (even, odd)


def full_crops(rng: np.random.Generator, images: list[np.ndarray], crop: tuple[int, int],
               n: int, gap: int = 1) -> tuple[np.ndarray, list[int]]:
    """``n`` full-width crops, (n, 1, rows, 2 x columns + :func:`gap_columns`) float32, and the input's
    column parity of each.

    ``crop`` is the size of one column half; each crop is flipped left-right half the time.
    """
    out, parity = [], []
    width = 2 * crop[1] + gap_columns(gap)
    for _ in range(n):
        image = images[int(rng.integers(len(images)))]
        r = int(rng.integers(0, image.shape[0] - crop[0] + 1))
        c = int(rng.integers(0, image.shape[1] - width + 1))
        patch = image[r:r + crop[0], c:c + width]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        out.append(patch)
        parity.append(int(rng.integers(2)))
    return np.ascontiguousarray(np.stack(out)[:, None], dtype=np.float32), parity


def _columns(batch: torch.Tensor, starts: list[int], half: int) -> torch.Tensor:
    """``half`` columns two apart from column ``starts[i]`` of each b-scan of an (N, 1, H, W) batch."""
    return torch.stack([batch[i, :, :, s:s + 2 * half:2] for i, s in enumerate(starts)])


def lateral_mean_loss(output: torch.Tensor, anchor: torch.Tensor, width: int = 32) -> torch.Tensor:
    """MSE between output and ``anchor``, each averaged over ``width`` neighbouring A-scans.

    Averaged across A-scans (not along them), speckle mostly cancels while a thin layer keeps its depth
    profile, so this term weighs the layer profile that the per-pixel loss lets the network flatten where
    it cannot tell a thin line's row in one noisy frame (napari_hdcyclegan.profiles). The anchor is a
    reference or the other column half, or the noisy input itself (whose own left-over noise the network
    can then keep).
    """
    pool = (1, min(int(width), output.shape[-1]))
    return F.mse_loss(F.avg_pool2d(output.float(), pool), F.avg_pool2d(anchor.float(), pool))


def half_pair_loss(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor, profile: float = 0.0,
                   profile_width: int = 16, profile_anchor: str = "target") -> tuple[torch.Tensor, torch.Tensor]:
    """Noise2Noise MSE of ``out`` = model(``x``) against the other half ``y``, plus ``profile`` x
    :func:`lateral_mean_loss` against ``y`` (``profile_anchor`` "target") or ``x`` ("input"): (total, MSE)."""
    mse = F.mse_loss(out, y)
    if profile <= 0:
        return mse, mse
    return mse + profile * lateral_mean_loss(out, x if profile_anchor == "input" else y, profile_width), mse


def neighbour_loss(model: Callable[[torch.Tensor], torch.Tensor], full: torch.Tensor, parity: list[int],
                   consistency: float, profile: float = 0.0, profile_width: int = 16,
                   profile_anchor: str = "target", gap: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Column-half Noise2Noise MSE plus ``consistency`` x Neighbor2Neighbor's term: (total, MSE).

    ``model`` maps (N, 1, H, W) to the same shape (the caller picks autocast); ``full`` comes from
    :func:`full_crops`. One half of each crop goes in, the other is the target; the term asks the
    output's error against that target to equal the difference between the same two halves of the
    model's output for the whole crop (computed without gradients, as in the paper). ``profile`` > 0
    adds that times :func:`lateral_mean_loss` over ``profile_width`` half-width columns against the
    target half (``profile_anchor`` "target") or the input half ("input"). ``gap`` (as ``full_crops`` drew
    ``full`` with): the two halves start at columns 0 and ``gap``; parity 0 puts the first in, 1 the second.
    """
    half = (full.shape[-1] - gap_columns(gap)) // 2
    inputs, targets = [p * gap for p in parity], [(1 - p) * gap for p in parity]
    x, y = _columns(full, inputs, half), _columns(full, targets, half)
    out = model(x).float()
    total, mse = half_pair_loss(out, x, y, profile, profile_width, profile_anchor)
    if consistency <= 0:
        return total, mse
    with torch.no_grad():
        whole = model(full).float()
    shift = _columns(whole, inputs, half) - _columns(whole, targets, half)
    return total + consistency * F.mse_loss(out - y, shift), mse
