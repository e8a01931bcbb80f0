"""Noise2Noise pairs from one noisy b-scan: its even- and odd-column halves.

Neighbouring A-scans carry nearly independent speckle, so the two column halves of a b-scan are two
noisy views of almost the same scene. They are not exactly the same scene: each half is shifted by
half a (half-width) column against the other, and a network trained to map one onto the other learns
that shift as a lateral blur, which shows as lines along steep layer edges in the residual. The
Neighbor2Neighbor consistency term (Huang et al., CVPR 2021) corrects for it: the difference the
network's own full-width output shows between the two column parities is what the half-to-half
mapping should keep, not average away. An optional layer-profile term (:func:`lateral_mean_loss`)
weighs the depth profile averaged across A-scans, which the per-pixel term lets the network flatten.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


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


def full_crops(rng: np.random.Generator, images: list[np.ndarray], crop: tuple[int, int],
               n: int) -> tuple[np.ndarray, list[int]]:
    """``n`` full-width crops, (n, 1, rows, 2 x columns) float32, and the input's column parity of each.

    ``crop`` is the size of one column half; each crop is flipped left-right half the time.
    """
    out, parity = [], []
    for _ in range(n):
        image = images[int(rng.integers(len(images)))]
        r = int(rng.integers(0, image.shape[0] - crop[0] + 1))
        c = int(rng.integers(0, image.shape[1] - 2 * crop[1] + 1))
        patch = image[r:r + crop[0], c:c + 2 * crop[1]]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        out.append(patch)
        parity.append(int(rng.integers(2)))
    return np.ascontiguousarray(np.stack(out)[:, None], dtype=np.float32), parity


def _columns(batch: torch.Tensor, parity: list[int]) -> torch.Tensor:
    """Column half ``parity[i]`` (0 even, 1 odd) of each b-scan of an (N, 1, H, 2W) batch."""
    return torch.stack([batch[i, :, :, p::2] for i, p in enumerate(parity)])


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
                   profile_anchor: str = "target") -> tuple[torch.Tensor, torch.Tensor]:
    """Column-half Noise2Noise MSE plus ``consistency`` x Neighbor2Neighbor's term: (total, MSE).

    ``model`` maps (N, 1, H, W) to the same shape (the caller picks autocast); ``full`` comes from
    :func:`full_crops`. One half of each crop goes in, the other is the target; the term asks the
    output's error against that target to equal the difference between the same two halves of the
    model's output for the whole crop (computed without gradients, as in the paper). ``profile`` > 0
    adds that times :func:`lateral_mean_loss` over ``profile_width`` half-width columns against the
    target half (``profile_anchor`` "target") or the input half ("input").
    """
    other = [1 - p for p in parity]
    x, y = _columns(full, parity), _columns(full, other)
    out = model(x).float()
    total, mse = half_pair_loss(out, x, y, profile, profile_width, profile_anchor)
    if consistency <= 0:
        return total, mse
    with torch.no_grad():
        whole = model(full).float()
    gap = _columns(whole, parity) - _columns(whole, other)
    return total + consistency * F.mse_loss(out - y, gap), mse
