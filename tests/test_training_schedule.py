"""training.schedule: the phases of the global step and the learning rate in each."""

import pytest

from training.config import FitConfig
from training.schedule import lr_at, phase, total_steps


def _cfg(**kw) -> FitConfig:
    base = dict(pretrain_steps=10, pretrain_d_steps=4, steps=20, pretrain_lr=1e-3, pretrain_lr_end=0.2, lr=5e-4,
                lr_decay_start=0.5)
    return FitConfig(**{**base, **kw})


def test_phases_follow_each_other():
    cfg = _cfg()
    assert total_steps(cfg) == 34
    assert [phase(cfg, s) for s in (0, 9, 10, 13, 14, 33)] == [
        "pretrain_G", "pretrain_G", "pretrain_D", "pretrain_D", "gan", "gan"]
    assert phase(_cfg(pretrain_steps=0, pretrain_d_steps=0), 0) == "gan"


def test_learning_rate_in_each_phase():
    cfg = _cfg()
    assert lr_at(cfg, 0) == pytest.approx(1e-3)
    assert lr_at(cfg, 5) == pytest.approx(1e-3 * (1 - 0.8 * 0.5))  # linear towards 0.2 x over the pre-training
    assert lr_at(cfg, 10) == lr_at(cfg, 13) == pytest.approx(1e-3)  # the discriminator's pre-training
    assert lr_at(cfg, 14) == lr_at(cfg, 23) == pytest.approx(5e-4)  # constant for the first half of the GAN steps
    assert lr_at(cfg, 29) == pytest.approx(5e-4 * (1 - 5 / 10))  # then linear to zero
    assert lr_at(cfg, 34) == 0.0
    assert lr_at(_cfg(lr_decay_start=1.0), 33) == pytest.approx(5e-4)  # no decay
