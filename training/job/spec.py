"""What a training job is: the Train widget's settings (:class:`JobSpec`) and the ``training.fit`` config
they become, written into the run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

CONFIG_NAME = "job.json"
#: Validation choices: none, or held-back simulated Spectralis-like pairs (PSNR/SSIM, "best").
VALIDATIONS = ("none", "sim", "pairs")
#: What a run writes into its folder: any of them there means the folder holds a run.
RUN_FILES = ("last", "last.old", "best", "best.old", "log.csv", "val.csv")




class JobError(ValueError):
    """Input a training run cannot use; the message says what to change."""


@dataclass
class JobSpec:
    """What the widget asks for; :func:`fit_config` turns it into ``training.fit`` fields."""

    out: str
    name: str
    init_from: str = ""  # a shipped/user model name or model directory; "" = from scratch
    steps: int = 500  # adversarial steps
    minutes: float = 0.0  # wall-clock budget (0 = none): the run is stopped when it is spent
    device: str = "auto"
    crop: int = 128
    batch: int = 2
    width: int = 16  # from scratch only; fine-tuning takes the base model's architecture
    n_res: int = 6
    validation: str = "none"  # none | sim (simulated pairs) | pairs (val_noisy vs val_reference folders)
    val_noisy: str = ""  # validation="pairs": folder of noisy b-scans
    val_reference: str = ""  # validation="pairs": folder of their low-noise references, same names order
    ckpt_every: int = 25  # also how often the preview can refresh
    val_every: int = 100
    seed: int = 0
    threads: int = 0
    extra: dict = field(default_factory=dict)  # any other FitConfig field, e.g. {"lr": 1e-4}

    def hn_dir(self) -> Path:
        return Path(self.out) / "data" / "hn"

    def ln_dir(self) -> Path:
        return Path(self.out) / "data" / "ln"


def defaults_for(device: str) -> dict[str, int]:
    """Sensible crop and batch: small on CPU, the paper's crops on a GPU."""
    gpu = device.startswith("cuda") or (device == "auto" and _auto_device_type() == "cuda")
    return {"crop": 256, "batch": 4} if gpu else {"crop": 128, "batch": 2}


def _auto_device_type() -> str:
    """The kind of device ``"auto"`` resolves to (:func:`napari_hdcyclegan.devices.resolve_device`)."""
    from napari_hdcyclegan.devices import resolve_device

    return resolve_device("auto").type


def base_architecture(init_from: str) -> dict:
    """FitConfig fields taken from the base model: widths, depth, residual, normalisation (they must
    match) and its output smoothing across A-scans (a fine-tuned model keeps it)."""
    from napari_hdcyclegan.model.checkpoint import read_config, resolve_model_dir

    cfg = read_config(resolve_model_dir(init_from))
    norm = "dtype" if cfg.normalisation.get("method") == "dtype" else "percentile"
    return {"width": cfg.generator_width, "n_res": cfg.n_res, "residual": cfg.residual,
            "d_width": cfg.discriminator_width, "normalisation": norm, "lateral_sigma": cfg.lateral_sigma}


def fit_config(spec: JobSpec) -> dict:
    """The ``training.fit`` config (a FitConfig dict) of ``spec``."""
    if spec.validation not in VALIDATIONS:
        raise JobError(f"validation must be one of {VALIDATIONS}, got {spec.validation!r}")
    cfg = {"data": f"{spec.hn_dir().resolve()},{spec.ln_dir().resolve()}", "out": str(Path(spec.out).resolve()),
           "name": spec.name, "steps": int(spec.steps), "device": spec.device, "crop": int(spec.crop),
           "batch": int(spec.batch), "ckpt_every": int(spec.ckpt_every), "val_every": int(spec.val_every),
           "seed": int(spec.seed), "threads": int(spec.threads), "sim_val_n": 4 if spec.validation == "sim" else 0,
           "val_bm3d": False, "width": spec.width, "n_res": spec.n_res, "d_width": spec.width,
           "residual": True, "normalisation": "dtype"}
    if spec.validation == "pairs":
        folders = [Path(f) for f in (spec.val_noisy, spec.val_reference)]
        if not all(str(f) not in ("", ".") and f.is_dir() for f in folders):
            raise JobError("paired validation needs a folder of noisy b-scans and a folder of their references")
        cfg["val_pairs"] = ",".join(str(f.resolve()) for f in folders)
    if spec.init_from:
        from napari_hdcyclegan.model.checkpoint import resolve_model_dir

        cfg.update(base_architecture(spec.init_from), init_from=str(resolve_model_dir(spec.init_from).resolve()),
                   lr=2e-4)
    cfg.update(spec.extra)
    return cfg



def write_config(spec: JobSpec) -> Path:
    """``OUT/job.json``: the fit config, read by ``python -m training.fit --config``."""
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CONFIG_NAME
    path.write_text(json.dumps(fit_config(spec), indent=2))
    (out / "job_spec.json").write_text(json.dumps(asdict(spec), indent=2))
    return path

