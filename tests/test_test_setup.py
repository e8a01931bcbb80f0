"""The test setup itself: a run that loads Qt leaves nothing behind (conftest's fast exit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _xvfb_pids(marker: str) -> set[int]:
    """Process ids of the running Xvfb servers started with ``marker`` in their environment (Linux
    /proc): those of the test's own child run, not of other runs on the machine."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[0].endswith(b"Xvfb") and \
                        marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "two-workers"])
def test_a_qt_test_run_stops_its_xvfb(tmp_path, workers):
    """Serially and as scripts/run_tests.sh runs it (pytest-xdist workers, each with its own Xvfb)."""
    pytest.importorskip("pytest_xvfb")
    if workers:
        pytest.importorskip("xdist")
    if subprocess.run(["which", "Xvfb"], capture_output=True).returncode != 0:
        pytest.skip("Xvfb is not installed")
    for name in ("test_qt.py", "test_qt2.py"):  # two files: with two workers, one each
        (tmp_path / name).write_text("def test_qt(qtbot):\n    from qtpy.QtWidgets import QWidget\n"
                                     "    qtbot.addWidget(QWidget())\n")
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    marker = f"HDCYCLEGAN_XVFB_CHECK={os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # so that pytest-xvfb starts its own
    env[marker.split("=")[0]] = marker.split("=")[1]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not _xvfb_pids(marker)  # os._exit skips pytest-xvfb's atexit: an Xvfb was left per run
