"""The global-step schedule of a training run: which phase a step is in and its learning rate.

Steps count through generator pre-training (``pretrain_steps``), discriminator pre-training
(``pretrain_d_steps``) and the paper's adversarial objective (``steps``), in that order.
"""

from __future__ import annotations

from .config import FitConfig


def total_steps(cfg: FitConfig) -> int:
    """Steps of all three phases."""
    return cfg.pretrain_steps + cfg.pretrain_d_steps + cfg.steps


def phase(cfg: FitConfig, step: int) -> str:
    """``"pretrain_G"``, ``"pretrain_D"`` or ``"gan"`` for the 0-based global ``step``."""
    if step < cfg.pretrain_steps:
        return "pretrain_G"
    if step < cfg.pretrain_steps + cfg.pretrain_d_steps:
        return "pretrain_D"
    return "gan"


def lr_at(cfg: FitConfig, step: int) -> float:
    """Pre-training lr (falling linearly to ``pretrain_lr_end`` x itself over the generator's
    pre-training), then the adversarial lr, constant until ``lr_decay_start`` of the adversarial
    steps and falling linearly to zero after."""
    current = phase(cfg, step)
    if current == "pretrain_G":
        frac = step / max(1, cfg.pretrain_steps)
        return cfg.pretrain_lr * (1.0 - (1.0 - cfg.pretrain_lr_end) * frac)
    if current == "pretrain_D":
        return cfg.pretrain_lr
    k = step - cfg.pretrain_steps - cfg.pretrain_d_steps
    start = int(cfg.lr_decay_start * cfg.steps)
    if k < start:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - (k - start) / max(1, cfg.steps - start))
