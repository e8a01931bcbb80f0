"""``python -m training.job``: a training run from files or folders, headless, as the napari widget runs it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..runlog import checkpoint_folder, checkpoint_step
from .data import prepare_data, read_folder_images
from .process import BUDGET_SPENT, RESUME_FLAGS, TrainingJob, resume_spec
from .spec import VALIDATIONS, JobError, JobSpec, fit_config


def _images(paths: list[str]) -> list[np.ndarray]:
    """Arrays of files and folders given on the command line."""
    from napari_hdcyclegan.io import read_oct

    out: list[np.ndarray] = []
    for p in paths:
        out += read_folder_images(p) if Path(p).is_dir() else [read_oct(p).data]
    return out


#: JobSpec fields the command line sets, with their help; ``--lr`` goes into ``extra``.
SPEC_FLAGS: dict[str, tuple[type, str]] = {
    "init_from": (str, "a model name or folder to fine-tune (empty: from scratch)"),
    "steps": (int, "adversarial steps"),
    "minutes": (float, "wall-clock budget: stop then and export the last checkpoint (0 = none)"),
    "device": (str, "auto | cpu | cuda | cuda:N | mps"),
    "crop": (int, "training crop, pixels (the widget picks 256 on a GPU)"),
    "batch": (int, "crops per step"),
    "width": (int, "generator and discriminator width, from scratch only"),
    "n_res": (int, "residual blocks of the generator, from scratch only"),
    "seed": (int, "random seed (crops, initial weights)"),
    "validation": (str, f"one of {', '.join(VALIDATIONS)}: held-back simulated pairs, or --val-noisy/--val-reference"),
    "val_noisy": (str, "--validation pairs: folder of noisy b-scans"),
    "val_reference": (str, "--validation pairs: folder of their low-noise references, in the same name order"),
    "ckpt_every": (int, "steps between checkpoints (last/)"),
    "val_every": (int, "steps between validations"),
    "threads": (int, "torch CPU threads (0 = torch's default)"),
}
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.job", description=main.__doc__)
    ap.add_argument("--hn", nargs="+", help="high-noise files or folders (not with --resume)")
    ap.add_argument("--ln", nargs="+", help="low-noise files or folders, unpaired (not with --resume)")
    ap.add_argument("--name", required=True, help="name of the exported user model")
    ap.add_argument("--out", help="run folder (default: the user data directory's runs/NAME)")
    ap.add_argument("--resume", action="store_true",
                    help=f"go on from the run folder's last checkpoint (may change --{', --'.join(RESUME_FLAGS)})")
    ap.add_argument("--lr", type=float, help="adversarial learning rate (default 5e-4 from scratch, 2e-4 "
                                             "fine-tuning)")
    ap.add_argument("--no-export", action="store_true", help="train only; export later with training.export")
    defaults = JobSpec(out="", name="")
    for key, (kind, text) in SPEC_FLAGS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=kind, default=None,
                        help=f"{text} (default {getattr(defaults, key)!r})")
    return ap


def _new_spec(a: argparse.Namespace, out: str, given: dict) -> JobSpec:
    """The spec of a new run from the command line, its data written into ``out``."""
    if not a.hn or not a.ln:
        raise JobError("a new run needs --hn and --ln (files or folders); --resume goes on with an existing run")
    if a.init_from and ({"width", "n_res"} & set(given)):
        raise JobError("--width and --n-res set a run from scratch; fine-tuning takes the base model's")
    spec = JobSpec(out=out, name=a.name, **given, extra={"lr": a.lr} if a.lr is not None else {})
    fit_config(spec)  # a bad --validation or --init-from is refused before any data is written
    print(f"{sum(prepare_data(spec, _images(a.hn), _images(a.ln)))} b-scans written to {spec.out}/data")
    return spec


def main(argv: list[str] | None = None) -> int:
    """``python -m training.job``: what the napari widget does, headless (run, then export)."""
    from napari_hdcyclegan.errors import HDCycleGANError
    from napari_hdcyclegan.model.registry import check_model_name, user_runs_dir

    from ..publish import export_run

    a = _parser().parse_args(argv)
    given = {k: getattr(a, k) for k in SPEC_FLAGS if getattr(a, k) is not None}
    try:  # the name and the run folder are checked before any data is read or written
        check_model_name(a.name)
        out = a.out or str(user_runs_dir() / a.name)
        if a.resume:
            if a.hn or a.ln or a.lr is not None:
                raise JobError("--resume goes on with the run's data and settings: leave out --hn, --ln and --lr")
            spec = resume_spec(out, given)
        else:
            spec = _new_spec(a, out, given)
    except (HDCycleGANError, ValueError) as exc:  # JobError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    job = TrainingJob(spec)
    job.start(resume=a.resume)
    while job.poll() == "running":
        time.sleep(1.0)
    if job.state == "stopped" and job.reason == BUDGET_SPENT and job.can_resume():
        print(f"time budget spent at step {checkpoint_step(checkpoint_folder(spec.out, 'last'))}: "
              "exporting that checkpoint (--resume goes on)", file=sys.stderr)
    elif job.state != "finished":
        print(f"training {job.state} ({job.reason}):\n{job.stderr_tail()}", file=sys.stderr)
        return 1
    if not a.no_export:
        print(f"exported {export_run(spec.out, a.name)}")
    return 0




if __name__ == "__main__":
    raise SystemExit(main())
