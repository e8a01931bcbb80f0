"""What :func:`napari_hdcyclegan.engine.get_denoiser` loads: a model's generator, config and provenance.

Kept apart from the engine so that the engine holds inference only. The untrained fallback (a seeded
random generator, clearly labelled) stands in while no averaged-scan model is shipped.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, cast

import torch

from .model.checkpoint import WEIGHTS_FILE, CheckpointError, ModelConfig, load_model, resolve_model_dir
from .model.choice import AVERAGED_MODEL
from .model.networks import Generator

__all__ = ["UNTRAINED_NAME", "UNTRAINED_SEED", "cache_key", "file_sha256", "load_generator", "untrained_generator"]

UNTRAINED_NAME = "untrained (random weights)"
#: Seed of the untrained fallback, so that its (meaningless) output is at least reproducible.
UNTRAINED_SEED = 0

Loaded = tuple[Generator, ModelConfig, dict[str, Any]]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (weights provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def untrained_generator() -> Loaded:
    """The fallback: a seeded, randomly initialised paper-size generator, its config and labels."""
    config = ModelConfig(name=UNTRAINED_NAME, trained=False,
                         description="randomly initialised generator: no trained weights are shipped yet",
                         provenance={"init": f"torch default init, seed {UNTRAINED_SEED}"})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        gen = Generator(config.generator_width, config.n_res)
    return gen, config, {"name": UNTRAINED_NAME, "trained": False, "source": f"random init (seed {UNTRAINED_SEED})"}


def load_generator(weights: str | os.PathLike) -> Loaded:
    """``G_L`` of a shipped model or model directory, its config and provenance labels."""
    model_dir = resolve_model_dir(weights)
    nets, config = load_model(model_dir, parts=("G_L",))
    digest = file_sha256(model_dir / WEIGHTS_FILE)
    recorded = config.provenance.get("weights_sha256")
    if isinstance(recorded, str) and recorded != digest:  # exports record it; training checkpoints do not
        raise CheckpointError(model_dir / WEIGHTS_FILE, f"its SHA-256 ({digest[:12]}...) differs from the one "
                                                        f"config.json records ({recorded[:12]}...): the file is "
                                                        "damaged or was replaced; export or install the model again")
    name = config.name if config.name and config.name != "untrained" else model_dir.name
    return cast(Generator, nets["G_L"]), config, {"name": name, "source": str(weights), "weights_sha256": digest}


def cache_key(weights: str | os.PathLike, device: torch.device, shipped: list[str]) -> tuple:
    """Identity of a model on a device; includes the weights file's mtime so retraining reloads.

    ``shipped``: the shipped model names (the averaged-scan model falls back to the untrained
    generator when it is not among them).
    """
    if str(weights) == AVERAGED_MODEL and AVERAGED_MODEL not in shipped:
        return (UNTRAINED_NAME, str(device))
    model_dir = resolve_model_dir(weights).resolve()
    stat = (model_dir / WEIGHTS_FILE).stat() if (model_dir / WEIGHTS_FILE).exists() else None
    return (str(model_dir), stat and (stat.st_mtime_ns, stat.st_size), str(device))
