"""What a model folder holds and where the shipped ones live: the names both the checkpoint code and
the model registry need (kept apart from both so that neither imports the other's internals)."""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"


def shipped_models() -> list[str]:
    """Names of the models shipped inside the package.

    Returns
    -------
    list of str
        Sorted; empty when the package ships none.
    """
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / CONFIG_FILE).is_file())
