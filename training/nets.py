"""Training-time containers around the networks: both generators, the fake pool, G_L's weight average."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from napari_hdcyclegan.model.networks import Generator


class CycleGenerators(nn.Module):
    """Both generators in one module, so one DDP wrapper sees every use of their weights."""

    def __init__(self, width: int, n_res: int, residual: bool = False) -> None:
        super().__init__()
        self.G_L = Generator(width, n_res, residual)
        self.G_H = Generator(width, n_res, residual)

    def forward(self, h: torch.Tensor, l: torch.Tensor, identity: bool = False, cycle: bool = True,
                with_h: bool = True):
        fake_l = self.G_L(h)
        if not with_h:  # supervised pre-training of G_L alone
            return {"fake_l": fake_l}
        fake_h = self.G_H(l)
        out = {"fake_l": fake_l, "fake_h": fake_h}
        if cycle:
            out["rec_h"], out["rec_l"] = self.G_H(fake_l), self.G_L(fake_h)
        if identity:
            out["id_l"], out["id_h"] = self.G_L(l), self.G_H(h)
        return out


class ImagePool:
    """Past fakes for the discriminator (Shrivastava et al.): half the time a stored one is shown."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif rng.random() < 0.5:
                i = int(rng.integers(self.size))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)


class WeightAverage:
    """Exponential moving average of a network's weights (``--ema DECAY``; Polyak averaging).

    The average is what validation scores and what checkpoints export as the model; the raw weights
    keep training. It smooths the last steps' noise out of the weights, a cheap stand-in for
    averaging the outputs of several runs.
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.net = net
        self.average = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))

    def update(self) -> None:
        self.average.update_parameters(self.net)

    @property
    def module(self) -> nn.Module:
        return self.average.module

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.average.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.average.load_state_dict(state)
