"""Networks and checkpoint I/O. Importing this package imports torch."""

from .checkpoint import CheckpointError, ModelConfig, load_model, save_model
from .networks import GENERATOR_STAGES, Discriminator, Generator, run_generator

__all__ = [
    "GENERATOR_STAGES", "CheckpointError", "Discriminator", "Generator", "ModelConfig",
    "load_model", "run_generator", "save_model",
]
