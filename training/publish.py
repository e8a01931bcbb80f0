"""Export a training run as a user model: G_L into the per-user models directory, with its card.

The folder gets ``config.json`` + ``model.safetensors`` (float16 G_L, provenance), ``MODEL_CARD.md``,
``fit_config.json`` (reproduces the run), and ``learning_curve.png`` / ``validation.csv`` when the
run wrote them. It never writes into the installed package.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from napari_hdcyclegan.io.atomic import replace_folder
from napari_hdcyclegan.model.registry import check_model_name, user_models_dir

from .runlog import RunLog, checkpoint_folder, checkpoint_step


class ExportError(ValueError):
    """A run that cannot be exported (no checkpoint yet, name taken)."""


def chosen_checkpoint(out: str | Path) -> Path:
    """``OUT/best`` (best validation score) when the run validated, else ``OUT/last``."""
    folder = checkpoint_folder(out, "best") or checkpoint_folder(out, "last")
    if folder is None:
        raise ExportError(f"{out}: no checkpoint yet (the first is written after 'checkpoint every' steps)")
    return folder


def wall_seconds(run: RunLog) -> float:
    """Training wall time over all segments of a resumed run (``seconds`` restarts at a resume)."""
    _, secs = run.series("seconds")
    total, prev = 0.0, 0.0
    for s in secs:
        if s < prev:
            total += prev
        prev = s
    return total + prev


def model_card(name: str, out: Path, checkpoint: Path, description: str) -> str:
    """MODEL_CARD.md text: what was trained on what, how long, which checkpoint, how to reproduce."""
    cfg = json.loads((out / "fit_config.json").read_text()) if (out / "fit_config.json").exists() else {}
    prov = json.loads((checkpoint / "config.json").read_text()).get("provenance", {})
    data = prov.get("data", {})
    run = RunLog(out)
    run.update()
    metrics = prov.get("metrics") or {}
    scored = (f"validation PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f} ({_validated_on(cfg)})"
              if "psnr" in metrics else "no validation data: the last checkpoint")
    base = cfg.get("init_from") or "none (trained from scratch)"
    total_steps = cfg.get("pretrain_steps", 0) + cfg.get("pretrain_d_steps", 0) + cfg.get("steps", 0)
    return "\n".join([
        f"# {name}", "", description or f"HDcycleGAN G_L trained from run {out.name}.", "",
        "## Data",
        _data_line(cfg, data), "",
        "## Training",
        f"- base model: {Path(base).name if cfg.get('init_from') else base}",
        f"- generator width {cfg.get('width')}, {cfg.get('n_res')} residual blocks, residual output "
        f"{cfg.get('residual')}; normalisation `{cfg.get('normalisation')}`; output smoothed across A-scans "
        f"with lateral_sigma {cfg.get('lateral_sigma', 0.0)} px",
        f"- steps run: {run.last_step} of {total_steps}; "
        f"crop {cfg.get('crop')}, batch {cfg.get('batch')}, lr {cfg.get('lr')}, device {cfg.get('device')}",
        f"- wall time: {wall_seconds(run):.0f} s; hardware: {prov.get('hardware', 'not recorded')}",
        f"- exported checkpoint: `{checkpoint.name}` at step {checkpoint_step(checkpoint)}; {scored}", "",
        "## Reproduce",
        "`python -m training.fit --config fit_config.json --out NEW_RUN` (the data folders named in it must "
        "exist; without `--out` it would refuse the original run's folder).", "",
    ])


def _data_line(cfg: dict, data: dict) -> str:
    """What the run trained on, as its data description records it."""
    if "n_hn" in data and "n_ln" in data and not cfg.get("paired_folders"):
        return f"Unpaired: {data['n_hn']} high-noise (HN) and {data['n_ln']} low-noise (LN) b-scans."
    facts = ", ".join(f"{k} {v}" for k, v in data.items() if isinstance(v, (int, float, str)))
    return f"`--data {cfg.get('data', '?')}`" + (f": {facts}." if facts else ".")


def _validated_on(cfg: dict) -> str:
    """Where the validation scores come from."""
    if cfg.get("val_pairs"):
        return "the pairs in --val-pairs"
    if cfg.get("sim_val_n"):
        return "simulated pairs"
    return f"the run's validation data (select_on {cfg.get('select_on', 'all')})"


def export_run(out: str | Path, name: str, description: str = "", overwrite: bool = False) -> Path:
    """Export run ``out`` as user model ``name``; returns the model folder."""
    from .export import export

    out = Path(out)
    try:
        check_model_name(name)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    checkpoint = chosen_checkpoint(out)
    target = user_models_dir() / name
    if target.exists() and not overwrite:
        raise ExportError(f"a user model named {name!r} exists already ({target}); choose another name")
    tmp = target.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export(checkpoint, tmp, name=name, description=description or f"trained from run {out.name}")
    for src, dst in (("loss.png", "learning_curve.png"), ("val.csv", "validation.csv"),
                     ("fit_config.json", "fit_config.json")):
        if (out / src).exists():
            shutil.copy2(out / src, tmp / dst)
    (tmp / "MODEL_CARD.md").write_text(model_card(name, out, checkpoint, description), encoding="utf-8")
    return replace_folder(tmp, target, old=target.with_name(f".{name}.old"))
