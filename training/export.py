"""Export a training checkpoint as an inference model: ``python -m training.export RUN/best OUT``.

Keeps only ``G_L`` (what inference needs), optionally stored as float16, and records the
provenance (training config, step, validation metrics, weights hash) in ``config.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from napari_hdcyclegan.model.checkpoint import WEIGHTS_FILE, load_model, save_model


def export(checkpoint: str | Path, out: str | Path, name: str | None = None, half: bool = True,
           description: str = "") -> Path:
    """Write the inference model directory ``out`` from a training checkpoint directory."""
    nets, config = load_model(checkpoint, parts=("G_L",))
    config.name = name or config.name
    config.description = description or config.description
    config.trained = True
    config.provenance = {**config.provenance, "exported_from": Path(checkpoint).name,
                         "storage": "float16" if half else "float32"}
    target = save_model(out, nets, config, half=half)
    digest = hashlib.sha256((target / WEIGHTS_FILE).read_bytes()).hexdigest()
    config.provenance["weights_sha256"] = digest
    return save_model(out, nets, config, half=half)


def _refusal(out: Path, overwrite: bool) -> str:
    """Why ``out`` may not receive the export ("" when it may): a checkpoint (its resume state would be
    lost) never, a folder holding anything else only with ``overwrite``."""
    if not out.exists():
        return ""
    if not out.is_dir():
        return "not a folder"
    if (out / "resume.pt").exists():
        return "holds a training checkpoint (resume.pt); export into a new folder"
    if any(out.iterdir()) and not overwrite:
        return "is not empty; choose a new folder, or pass --overwrite to replace the model there"
    return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a training checkpoint directory (e.g. runs/x/best)")
    p.add_argument("out", help="the model directory to write")
    p.add_argument("--name", help="model name recorded in config.json")
    p.add_argument("--description", default="")
    p.add_argument("--float32", action="store_true", help="store float32 instead of float16")
    p.add_argument("--overwrite", action="store_true", help="replace the model already in OUT (never a "
                   "training checkpoint)")
    a = p.parse_args(argv)
    refusal = _refusal(Path(a.out), a.overwrite)
    if refusal:
        print(f"error: {a.out}: {refusal}", file=sys.stderr)
        return 2
    print(export(a.checkpoint, a.out, a.name, half=not a.float32, description=a.description))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
