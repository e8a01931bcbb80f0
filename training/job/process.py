"""A job's ``training.fit`` process: start, poll, stop, resume, and ending with the process that started it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO

from ..runlog import checkpoint_folder, checkpoint_step, truncate_log
from .spec import CONFIG_NAME, JobError, JobSpec, write_config

#: A progress-bar line of training.fit (tqdm): left out of the crash report.
_PROGRESS = re.compile(r"^\s*\d+%\|")
STDERR_NAME = "stderr.log"


#: The reason :meth:`TrainingJob.poll` stops a run whose ``minutes`` are spent.
BUDGET_SPENT = "time budget spent"
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
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
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

