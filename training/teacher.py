"""Distillation (``--teacher``): another model's G_L output on full-width crops of real scans as a target.

A wider network trained by column-split Noise2Noise can denoise better than the shipped width, but costs
more per b-scan. Its output on full-width crops (the lateral sampling the student sees at inference) is a
target the student can regress to without the noise of a Noise2Noise target; the student keeps its own
``lateral_sigma`` after the generator, so the teacher's raw generator output (without its smoothing) is
the target when both use the same value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from napari_hdcyclegan.model.checkpoint import load_model
from napari_hdcyclegan.model.networks import Generator


class Teacher:
    """A frozen G_L loaded from a model folder (safetensors; nothing is unpickled)."""

    def __init__(self, model_dir: str | Path, device: torch.device) -> None:
        nets, _ = load_model(model_dir, parts=("G_L",))
        self.net = cast(Generator, nets["G_L"]).to(device).eval().requires_grad_(False)

    @torch.no_grad()
    def target(self, full: torch.Tensor) -> torch.Tensor:
        """The teacher's generator output for ``full`` (float32, same shape)."""
        return self.net(full).float()

    def loss(self, student: Callable[[torch.Tensor], torch.Tensor], split: Any, rng: np.random.Generator,
             batch: int, to_tensor: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
        """MSE between the student's and the teacher's output on ``batch`` full-width crops of real scans."""
        full = to_tensor(split.full_batch(rng, batch)[0])
        return F.mse_loss(student(full).float(), self.target(full))
