"""A structured blind-spot term (Noise2Void with a box mask, after Broaddus et al.'s StructN2V, 2020).

Column-split Noise2Noise trains on targets whose speckle the input partly shares wherever neighbouring
A-scans are correlated (Tian's scans: about 0.3 above the layer structure at one A-scan, 0.1 at two),
so the network learns to keep that part. Here the network sees the full-width scan with small boxes
hidden and is scored, at each box's centre only, against the raw pixel there. The box is as large as
the speckle grain, so nothing the network sees shares the centre's speckle: its best guess is the
scene, not the grain. A hidden box is filled with the box of the same size beside it (same rows), a
plausible continuation of the layers whose speckle is independent of the centre's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .frames import MixedSampler
from .real import SplitSampler

if TYPE_CHECKING:
    from .config import FitConfig


def box_mask(rng: np.random.Generator, shape: tuple[int, int, int], rows: int, cols: int
             ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Boxes to hide in a (batch, rows, columns) stack: (hidden indices, source indices, centre indices).

    The stack is cut into cells, each holding one box of ``2 rows + 1`` x ``2 cols + 1`` pixels and, on
    its left or right, the box of pixels whose values fill it, with 3 pixels to spare along each axis.
    Every input value therefore comes from outside every centre's box: the centres' own speckle is hidden.
    """
    n, h, w = shape
    bh, bw = 2 * rows + 1, 2 * cols + 1
    ch, cw = bh + 3, 2 * bw + 3
    if h < ch or w < cw:
        raise ValueError(f"crop {h} x {w} too small for blind-spot boxes of {bh} x {bw} (at least {ch} x {cw})")
    b, i, j = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(h // ch), np.arange(w // cw), indexing="ij"))
    cy = i * ch + rows + rng.integers(0, ch - bh + 1, size=b.size)
    left = j * cw + rng.integers(0, cw - 2 * bw + 1, size=b.size)  # first column of box + source
    box_first = rng.random(b.size) < 0.5
    cx = np.where(box_first, left, left + bw) + cols
    shift = np.where(box_first, bw, -bw)
    dy, dx = (a.ravel() for a in np.meshgrid(np.arange(-rows, rows + 1), np.arange(-cols, cols + 1), indexing="ij"))
    hb = np.repeat(b, dy.size)
    hy = (cy[:, None] + dy[None]).ravel()
    hx = (cx[:, None] + dx[None]).ravel()
    return (hb, hy, hx), (hb, hy, hx + np.repeat(shift, dy.size)), (b, cy, cx)


def blind_spot_loss(model: Callable[[torch.Tensor], torch.Tensor], full: torch.Tensor, rng: np.random.Generator,
                    rows: int, cols: int) -> torch.Tensor:
    """MSE at the box centres between ``model`` of ``full`` (N, 1, H, W) with the boxes hidden and ``full``."""
    hidden, source, centre = (tuple(torch.as_tensor(a, device=full.device) for a in idx)
                              for idx in box_mask(rng, (full.shape[0], full.shape[2], full.shape[3]), rows, cols))
    image = full[:, 0]
    masked = image.clone()
    masked[hidden] = image[source]
    out = model(masked[:, None]).float()[:, 0]
    return (out[centre] - image[centre].float()).pow(2).mean()


def blind_spot_term(model: Callable[[torch.Tensor], torch.Tensor], split: Any, rng: np.random.Generator,
                    cfg: FitConfig, to_tensor: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
    """:func:`blind_spot_loss` on a batch of full-width crops of the real noisy scans (``--blind-spot-weight``)."""
    real = split.first if isinstance(split, MixedSampler) else split  # frame or simulated pairs are not scans
    if not isinstance(real, SplitSampler):  # --data real always builds one
        raise TypeError("the blind-spot term needs the real scans' column-split sampler")
    full, _ = real.full_batch(rng, cfg.batch)
    return blind_spot_loss(model, to_tensor(full), rng, cfg.blind_spot_rows, cfg.blind_spot_cols)
