"""Where a checkpoint was made, for its provenance and model card: the code's commit and the hardware."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch


def git_commit() -> str:
    """The short commit of the code that trains ("" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def hardware(device: torch.device) -> str:
    """The processor a run trains on, for its model card (GPU name, or CPU model and threads)."""
    import platform

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:  # Linux names the model; platform often does not
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{device.type.upper()}: {cpu}, {torch.get_num_threads()} thread(s)"
