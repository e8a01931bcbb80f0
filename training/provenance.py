"""Where a checkpoint was made, for its provenance and model card: the code's commit and the hardware."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import torch


@cache  # every checkpoint records it: one git call per run, not per save
def git_commit() -> str:
    """The short commit of the code that trains ("" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def hardware(device: torch.device) -> str:
    """The processor a run trains on, for its model card (GPU name, or CPU model and threads)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{device.type.upper()}: {_cpu_name()}, {torch.get_num_threads()} thread(s)"


@cache  # read /proc/cpuinfo once per process, not at every save
def _cpu_name() -> str:
    """The CPU's model name (Linux names it in /proc/cpuinfo; ``platform`` often does not)."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        return cpu
