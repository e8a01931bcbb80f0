"""The HDcycleGAN objective (paper eqs. 1-4) on logits: cross-entropy GAN terms + L1 cycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_hdcyclegan.column_pairs import half_pair_loss, lateral_mean_loss, neighbour_loss  # noqa: F401  (lateral_mean_loss: the paired term in fit)
from napari_hdcyclegan.model.networks import CLASS_FAKE, CLASS_HN, CLASS_LN

from .frames import MixedSampler
from .real import SplitSampler

if TYPE_CHECKING:
    from .config import FitConfig


def _targets(n: int, cls: int, device: torch.device) -> torch.Tensor:
    return torch.full((n,), cls, dtype=torch.long, device=device)


def generator_gan_loss(d_fake_h: torch.Tensor, d_fake_l: torch.Tensor) -> torch.Tensor:
    """Eq. (2): G_H's fakes should be classed real HN, G_L's fakes real LN."""
    n_h, n_l = d_fake_h.shape[0], d_fake_l.shape[0]
    return (F.cross_entropy(d_fake_h, _targets(n_h, CLASS_HN, d_fake_h.device))
            + F.cross_entropy(d_fake_l, _targets(n_l, CLASS_LN, d_fake_l.device)))


def discriminator_loss(logits: torch.Tensor, n_real_h: int, n_real_l: int) -> torch.Tensor:
    """Eq. (3) for one batch ordered [real HN, real LN, fakes...]: each term a mean cross-entropy."""
    n_fake = logits.shape[0] - n_real_h - n_real_l
    dev = logits.device
    real_h, real_l, fake = logits.split([n_real_h, n_real_l, n_fake])
    loss = (F.cross_entropy(real_h, _targets(n_real_h, CLASS_HN, dev))
            + F.cross_entropy(real_l, _targets(n_real_l, CLASS_LN, dev)))
    if n_fake:  # without fakes this is the domain-classifier pre-training loss
        loss = loss + 2 * F.cross_entropy(fake, _targets(n_fake, CLASS_FAKE, dev))
    return loss


def r1_penalty(discriminator: torch.nn.Module, reals: torch.Tensor, n_real_h: int) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean squared gradient norm, at the real images, of the log-probability
    the discriminator gives their true class (HN for the first ``n_real_h``, LN for the rest)."""
    x = reals.detach().float().requires_grad_(True)
    logp = discriminator(x).float().log_softmax(dim=1)
    cls = torch.full((len(x),), CLASS_LN, dtype=torch.long, device=x.device)
    cls[:n_real_h] = CLASS_HN
    (grad,) = torch.autograd.grad(logp.gather(1, cls[:, None]).sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def cycle_loss(h: torch.Tensor, rec_h: torch.Tensor, l: torch.Tensor, rec_l: torch.Tensor) -> torch.Tensor:
    """Eq. (4) with mean absolute error per image pair."""
    return F.l1_loss(rec_l, l) + F.l1_loss(rec_h, h)


def class_probabilities(logits: torch.Tensor, n_real_h: int, n_real_l: int) -> dict[str, float]:
    """Mean probability D gives the right class to real HN, real LN and fakes (paper Fig. A.1)."""
    p = logits.softmax(dim=1)
    n_fake = logits.shape[0] - n_real_h - n_real_l
    real_h, real_l, fake = p.split([n_real_h, n_real_l, n_fake])
    return {"d_real_h": real_h[:, CLASS_HN].mean().item(), "d_real_l": real_l[:, CLASS_LN].mean().item(),
            "d_fake": fake[:, CLASS_FAKE].mean().item() if n_fake else float("nan")}


def paired_loss(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """G_L's output against its target: ``l1`` (the paper's choice) or ``mse`` (the conditional mean)."""
    return F.mse_loss(output, target) if kind == "mse" else F.l1_loss(output, target)


def column_split_loss(model: Callable[[torch.Tensor], torch.Tensor], split: Any, rng: np.random.Generator,
                      cfg: FitConfig, to_tensor: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
    """Column-split Noise2Noise on real noisy scans: the MSE to the other half, plus Neighbor2Neighbor's
    consistency term (``cfg.n2n_consistency``, full-width crops) and the layer-profile term
    (``cfg.mean_weight``, over half of ``cfg.mean_width``: a column half has half the A-scans)."""
    width = max(1, cfg.mean_width // 2)
    if cfg.n2n_consistency > 0:
        return _consistency_loss(model, split, rng, cfg, to_tensor, width)
    x, y = (to_tensor(a) for a in split.batch(rng, cfg.batch))
    return half_pair_loss(model(x).float(), x, y, cfg.mean_weight, width, cfg.mean_anchor)[0]


def _consistency_loss(model: Callable[[torch.Tensor], torch.Tensor], split: Any, rng: np.random.Generator,
                      cfg: FitConfig, to_tensor: Callable[[np.ndarray], torch.Tensor], width: int) -> torch.Tensor:
    """Neighbor2Neighbor on full-width crops; with ``--n2n-duke-frames`` / ``--n2n-sim`` their share of the
    crops are frame or simulated pairs, which have no half-column shift and take the plain term. The
    per-crop mean of both."""
    pairs, n_pairs = None, 0
    if isinstance(split, MixedSampler):
        n_pairs = int((rng.random(cfg.batch) < split.p).sum())
        split, pairs = split.first, split.second
    if not isinstance(split, SplitSampler):  # config refuses the other samplers
        raise TypeError("n2n_consistency needs column-split pairs")
    parts = []
    if n_pairs < cfg.batch:
        full, parity = split.full_batch(rng, cfg.batch - n_pairs)
        parts.append((cfg.batch - n_pairs, neighbour_loss(
            model, to_tensor(full), parity, cfg.n2n_consistency, cfg.mean_weight, width, cfg.mean_anchor,
            cfg.n2n_gap)[0]))
    if pairs is not None and n_pairs:
        x, y = (to_tensor(a) for a in pairs.batch(rng, n_pairs))
        parts.append((n_pairs, half_pair_loss(model(x).float(), x, y, cfg.mean_weight, width, cfg.mean_anchor)[0]))
    if len(parts) == 1:  # unscaled: the recipes without frame or simulated pairs keep their exact numbers
        return parts[0][1]
    return sum((n * loss for n, loss in parts), parts[0][1].new_zeros(())) / cfg.batch
