"""A training run as a subprocess: inputs checked and written as TIFF, a config file, start/stop/resume.

Used by the napari "Train / fine-tune" widget, napari-free and Qt-free::

    spec = JobSpec(out="runs/mine", name="mine", init_from="spectralis-sim", steps=300)
    prepare_data(spec, hn_images, ln_images)      # lists of 2D/3D arrays (layers or folders)
    job = TrainingJob(spec); job.start()          # python -m training.fit --config OUT/job.json
    job.poll()                                    # "running" | "finished" | "stopped" | "failed"
    job.stop(); job.start(resume=True)            # exact continuation from OUT/last

Stop terminates the process: checkpoints are written atomically, so ``OUT/last`` (resume) and
``OUT/best`` (best validation score) stay intact; the log rows after the last checkpoint are
dropped before a resume, so the logs continue exactly where the weights do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from .runlog import checkpoint_folder, checkpoint_step, truncate_log

CONFIG_NAME = "job.json"
#: A progress-bar line of training.fit (tqdm): left out of the crash report.
_PROGRESS = re.compile(r"^\s*\d+%\|")
STDERR_NAME = "stderr.log"
#: Validation choices: none, or held-back simulated Spectralis-like pairs (PSNR/SSIM, "best").
VALIDATIONS = ("none", "sim", "pairs")


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


# ---- inputs ---------------------------------------------------------------------------------------


def bscans(images: list[np.ndarray]) -> list[np.ndarray]:
    """2D b-scans of a list of 2D b-scans and 3D volumes (b-scans on axis 0)."""
    out: list[np.ndarray] = []
    for im in images:
        arr = np.asarray(im)
        if arr.ndim == 2:
            out.append(arr)
        elif arr.ndim == 3:
            out.extend(arr)
        else:
            raise JobError(f"expected 2D b-scans or 3D volumes, got shape {arr.shape}")
    return out


def read_folder_images(folder: str | os.PathLike) -> list[np.ndarray]:
    """Every readable OCT file of ``folder`` (TIFF/PNG/JPEG and vendor files) as arrays."""
    from napari_hdcyclegan.io import is_supported, read_oct

    path = Path(folder)
    if not path.is_dir():
        raise JobError(f"{path}: not a folder")
    files = sorted(f for f in path.iterdir() if f.is_file() and is_supported(f))
    try:
        return [read_oct(f).data for f in files]
    except ValueError as exc:  # OctReadError
        raise JobError(str(exc)) from exc


def check_domain(images: list[np.ndarray], what: str, crop: int) -> None:
    """One numeric dtype, one shape, at least one b-scan at least ``crop`` pixels each way."""
    if not images:
        raise JobError(f"no {what} data: choose an image layer or a folder of {what} b-scans")
    dtypes = {im.dtype for im in images}
    if len(dtypes) > 1:
        raise JobError(f"{what} images have mixed dtypes {sorted(map(str, dtypes))}")
    dtype = images[0].dtype
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise JobError(f"{what} data has dtype {dtype}; expected a numeric gray image")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise JobError(f"{what} b-scans have mixed shapes {sorted(shapes)}; use one size per domain")
    h, w = images[0].shape
    if min(h, w) < crop:
        raise JobError(f"{what} b-scans are {h}x{w}, smaller than the crop {crop}: lower the crop")


def check_domains(hn: list[np.ndarray], ln: list[np.ndarray], crop: int) -> None:
    """Both domains usable and of the same dtype (the model maps intensities by dtype)."""
    check_domain(hn, "HN (high-noise)", crop)
    check_domain(ln, "LN (low-noise)", crop)
    if hn[0].dtype != ln[0].dtype:
        raise JobError(f"HN data is {hn[0].dtype} but LN data is {ln[0].dtype}: both domains must share "
                       "one dtype (the same scanner export), convert one of them")


def prepare_data(spec: JobSpec, hn: list[np.ndarray], ln: list[np.ndarray]) -> tuple[int, int]:
    """Check the domains and write them as TIFF stacks into the run folder; returns the counts.

    A folder that already holds a run is refused before anything in it changes (JobError).
    """
    import tifffile

    held = [n for n in RUN_FILES if (Path(spec.out) / n).exists()]
    if held:
        raise JobError(f"{spec.out} already holds a run ({', '.join(held)}); choose another name or --out")
    hn, ln = bscans(hn), bscans(ln)
    check_domains(hn, ln, spec.crop)
    for folder, images in ((spec.hn_dir(), hn), (spec.ln_dir(), ln)):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.tif"):
            old.unlink()
        tifffile.imwrite(folder / "bscans.tif", np.stack(images), photometric="minisblack")
    return len(hn), len(ln)


# ---- the process ----------------------------------------------------------------------------------


def write_config(spec: JobSpec) -> Path:
    """``OUT/job.json``: the fit config, read by ``python -m training.fit --config``."""
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CONFIG_NAME
    path.write_text(json.dumps(fit_config(spec), indent=2))
    (out / "job_spec.json").write_text(json.dumps(asdict(spec), indent=2))
    return path


#: The reason :meth:`TrainingJob.poll` stops a run whose ``minutes`` are spent.
BUDGET_SPENT = "time budget spent"
#: What a run writes into its folder: any of them there means the folder holds a run.
RUN_FILES = ("last", "last.old", "best", "best.old", "log.csv", "val.csv")
#: Set in the environment of the process :class:`TrainingJob` starts: see :func:`exit_with_parent`.
EXIT_WITH_PARENT = "HDCYCLEGAN_EXIT_WITH_PARENT"


def exit_with_parent() -> None:
    """In a process started by :class:`TrainingJob`, end it as Stop does (SIGTERM; checkpoints stay)
    when the parent's end of its stdin pipe closes: napari quit or crashed, and nobody is watching.

    The parent never writes to the pipe, so EOF means it is gone, on every platform; a run started
    any other way (a shell, ``nohup``) is not watched.
    """
    if os.environ.get(EXIT_WITH_PARENT) != "1" or sys.stdin is None:
        return
    import threading

    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError):  # stdin replaced by something without a descriptor (io.UnsupportedOperation)
        return

    def watch() -> None:
        # the raw descriptor: a daemon thread blocked in sys.stdin's buffered read holds its lock, and
        # the interpreter aborts at exit when it cannot take that lock
        while os.read(fd, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def fit_command(config: Path, resume: bool = False) -> list[str]:
    """The command line of the training subprocess."""
    return [sys.executable, "-m", "training.fit", "--config", str(config)] + (["--resume"] if resume else [])


class TrainingJob:
    """One run folder and at most one live ``training.fit`` process on it."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.out = Path(spec.out)
        self.proc: subprocess.Popen | None = None
        self.state = "idle"  # idle | running | finished | stopped | failed
        self.reason = ""
        self.started = 0.0
        self._stderr: IO[str] | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the process was started (0 before)."""
        return time.monotonic() - self.started if self.started else 0.0

    def can_resume(self) -> bool:
        """True when ``OUT/last`` holds a checkpoint and no process runs."""
        return self.state != "running" and checkpoint_folder(self.out, "last") is not None

    def start(self, resume: bool = False) -> None:
        """Launch ``training.fit``; ``resume`` continues from ``OUT/last`` exactly."""
        if self.state == "running":
            raise JobError("a training process is already running")
        config = self.out / CONFIG_NAME if resume else write_config(self.spec)
        if resume:
            step = checkpoint_step(checkpoint_folder(self.out, "last"))
            if step is None:
                raise JobError(f"{self.out}: no checkpoint to resume from")
            for name in ("log.csv", "val.csv"):
                truncate_log(self.out / name, step)
        env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1", EXIT_WITH_PARENT: "1",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                              os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self._stderr = (self.out / STDERR_NAME).open("a" if resume else "w")
        self.proc = subprocess.Popen(fit_command(config, resume), stdout=self._stderr, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE, env=env, cwd=self.out)
        self.state, self.reason, self.started = "running", "", time.monotonic()

    def poll(self) -> str:
        """The state now; enforces the time budget (a spent budget stops the run)."""
        if self.state != "running" or self.proc is None:
            return self.state
        if self.spec.minutes and self.elapsed > 60 * self.spec.minutes:
            self.stop(BUDGET_SPENT)
            return self.state
        code = self.proc.poll()
        if code is not None:
            self._close()
            self.state = "finished" if code == 0 else "failed"
            self.reason = "" if code == 0 else f"exit status {code}"
        return self.state

    def stop(self, reason: str = "stopped by the user", timeout: float = 10.0) -> None:
        """Terminate the process (kill after ``timeout`` s); checkpoints written so far stay."""
        if self.proc is None or self.state != "running":
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()
        self.state, self.reason = "stopped", reason

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self, lines: int = 12) -> str:
        """The last ``lines`` lines the process wrote (its traceback when it crashed)."""
        path = self.out / STDERR_NAME
        if not path.exists():
            return ""
        text = path.read_text(errors="replace").replace("\r", "\n")
        kept = [ln for ln in text.splitlines() if ln.strip() and not _PROGRESS.match(ln)]
        return "\n".join(kept[-lines:])


# ---- resuming a run folder ------------------------------------------------------------------------


#: What ``--resume`` may change: how long and where the run goes on, not what it trains.
RESUME_FLAGS = ("steps", "minutes", "device", "threads")


def resume_spec(out: str | os.PathLike, changes: dict) -> JobSpec:
    """The spec of the run in ``out`` with ``changes`` (keys of :data:`RESUME_FLAGS`) applied to it and to
    its ``job.json``, ready for ``TrainingJob(spec).start(resume=True)``; JobError when it cannot resume."""
    folder = Path(out)
    try:
        spec = JobSpec(**json.loads((folder / "job_spec.json").read_text()))
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError, TypeError) as exc:
        raise JobError(f"{folder}: not a training.job run folder ({exc})") from None
    if checkpoint_folder(folder, "last") is None:
        raise JobError(f"{folder}: no checkpoint to resume from (last/)")
    refused = sorted(set(changes) - set(RESUME_FLAGS))
    if refused:
        raise JobError(f"--resume goes on with the run's settings; only --{', --'.join(RESUME_FLAGS)} may change "
                       f"(given: --{', --'.join(k.replace('_', '-') for k in refused)})")
    for key, value in changes.items():
        setattr(spec, key, value)
        if key in config:
            config[key] = value
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    (folder / "job_spec.json").write_text(json.dumps(asdict(spec), indent=2))
    return spec


def main(argv: list[str] | None = None) -> int:
    """``python -m training.job`` (:mod:`training.job_cli`)."""
    from .job_cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    raise SystemExit(main())
