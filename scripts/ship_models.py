"""Turn finished training runs into the shipped models: export G_L (float16) and pick the boundary channel.

    python scripts/ship_models.py RUN_DIR NAME [--description TEXT] [--lateral-sigma PX] [--floor-percentile Q]

RUN_DIR/best (the checkpoint with the best validation score) becomes
napari_hdcyclegan/weights/NAME/; RUN_DIR may instead be a model already exported with
``python -m training.export`` (e.g. on another machine), which is copied as it is; the boundary
channel is calibrated on simulated b-scans with known
ILM/RPE (napari_hdcyclegan.boundaries.calibrate_boundary_channel) and stored in its config.json.
``--lateral-sigma`` sets the shipped model's smoothing across A-scans when it was chosen after training
(the training run records the one it validated with); ``--floor-percentile`` sets the inference-time
``normalisation.floor_percentile`` (``adjustments.floor_offset``; ``spectralis-real`` ships 0.1), which training
does not record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "napari_hdcyclegan" / "weights"


def _set_lateral_sigma(target: Path, sigma: float) -> None:
    """Write ``sigma`` as the model's ``lateral_sigma``."""
    config = json.loads((target / "config.json").read_text())
    config["lateral_sigma"] = sigma
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _set_floor_percentile(target: Path, q: float) -> None:
    """Write ``q`` as the model's ``normalisation.floor_percentile`` (0: none)."""
    config = json.loads((target / "config.json").read_text())
    norm = {k: v for k, v in (config.get("normalisation") or {"method": "dtype"}).items() if k != "floor_percentile"}
    config["normalisation"] = {**norm, **({"floor_percentile": q} if q > 0 else {})}
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _copy_export(src: Path, target: Path, name: str, description: str) -> Path:
    """Copy an exported model (config.json + model.safetensors) under a new name and description."""
    import shutil

    if not ((src / "config.json").is_file() and (src / "model.safetensors").is_file()):
        raise SystemExit(f"error: {src}: neither a run (no best/) nor an exported model "
                         "(config.json + model.safetensors)")
    config = json.loads((src / "config.json").read_text())
    if (src / "resume.pt").exists() or "exported_from" not in config.get("provenance", {}):
        raise SystemExit(f"error: {src}: a training checkpoint, not an exported model; "
                         "run python -m training.export on it or pass its run folder")
    if src.resolve() == target.resolve():
        raise SystemExit(f"error: {src} is already the shipped model {name!r}")
    config["name"] = name
    if description:
        config["description"] = description
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "model.safetensors", target / "model.safetensors")
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.add_argument("--lateral-sigma", type=float, default=None,
                   help="the shipped model's lateral smoothing in px (default: the run's)")
    p.add_argument("--floor-percentile", type=float, default=None,
                   help="take each b-scan's value at this percentile off before the generator (0: don't)")
    a = p.parse_args()

    from napari_hdcyclegan.model.checkpoint import MAX_LATERAL_SIGMA, valid_lateral_sigma

    if a.lateral_sigma is not None and not valid_lateral_sigma(a.lateral_sigma):  # before anything is replaced
        raise SystemExit(f"error: --lateral-sigma {a.lateral_sigma:g}: must be from 0 to {MAX_LATERAL_SIGMA:g}")
    if a.floor_percentile is not None and not 0 <= a.floor_percentile < 50:
        raise SystemExit(f"error: --floor-percentile {a.floor_percentile:g}: must be from 0 to below 50")

    from napari_hdcyclegan.boundaries import calibrate_boundary_channel
    from napari_hdcyclegan.engine import Denoiser
    from napari_hdcyclegan.model.checkpoint import load_model
    from training.export import export

    if (a.run / "best").is_dir():
        target = export(a.run / "best", WEIGHTS / a.name, name=a.name, description=a.description)
    else:
        target = _copy_export(a.run, WEIGHTS / a.name, a.name, a.description)
    if a.lateral_sigma is not None:
        _set_lateral_sigma(target, a.lateral_sigma)
    if a.floor_percentile is not None:
        _set_floor_percentile(target, a.floor_percentile)
    nets, config = load_model(target)
    denoiser = Denoiser(nets["G_L"], config, "cpu")
    choice = calibrate_boundary_channel(denoiser, n=4, seed=0, model_dir=target)
    print(json.dumps({"model": str(target), "boundary_channel": choice}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
