"""Packaging: cheap import, a valid npe2 manifest that napari discovers, the manifest symlink."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "napari_hdcyclegan"


def _run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_does_not_import_torch():
    out = _run_python("import sys, napari_hdcyclegan, napari_hdcyclegan.io, napari_hdcyclegan.intensity; "
                      "print(sorted(m for m in ('torch', 'napari', 'qtpy', 'PyQt6', 'eyepy') if m in sys.modules))")
    assert out == "[]"


def test_napari_faces_do_not_import_torch_until_used():
    out = _run_python("import sys, napari_hdcyclegan._reader, napari_hdcyclegan._writer, "
                      "napari_hdcyclegan._sample_data; print('torch' in sys.modules)")
    assert out == "False"


def test_manifest_symlink_resolves():
    link = PACKAGE / "napari.yaml"
    assert link.exists()
    assert link.resolve() == (ROOT / "napari.yaml").resolve()


def test_npe2_validate_passes():
    proc = subprocess.run([sys.executable, "-m", "npe2", "validate", str(ROOT / "napari.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in (proc.stdout + proc.stderr).lower()


def test_installed_entry_point_manifest_lists_contributions():
    npe2 = pytest.importorskip("npe2")
    try:
        manifest = npe2.PluginManifest.from_distribution("napari-hdcyclegan")
    except Exception as exc:  # noqa: BLE001 - not installed: say how
        pytest.fail(f"napari-hdcyclegan is not installed with its entry point ({exc}); pip install -e .")
    assert manifest.name == "napari-hdcyclegan"
    contrib = manifest.contributions
    assert {w.display_name for w in contrib.widgets} >= {
        "Denoise OCT (HDcycleGAN)", "Compare with BM3D and wavelet", "Feature-map explorer",
        "ILM / RPE boundaries and thickness"}
    assert {s.key for s in contrib.sample_data} >= {"simulated_volume", "heidelberg_vol"}
    assert contrib.readers and contrib.readers[0].accepts_directories
    assert contrib.writers and ".tif" in contrib.writers[0].filename_extensions


def test_plugin_manager_discovers_the_plugin():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert pm.get_manifest("napari-hdcyclegan").name == "napari-hdcyclegan"
    widgets = {w.display_name for w in pm.iter_widgets() if w.command.startswith("napari-hdcyclegan.")}
    assert "Denoise OCT (HDcycleGAN)" in widgets
    assert pm.get_command("napari-hdcyclegan.denoise_widget").python_name.endswith(":DenoiseWidget")
    readers = [r for r in pm.iter_compatible_readers(["x.vol"]) if r.command.startswith("napari-hdcyclegan.")]
    assert readers


def test_every_python_name_exists():
    import importlib

    import yaml

    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text())
    missing = []
    for cmd in manifest["contributions"]["commands"]:
        module, attr = cmd["python_name"].split(":")
        if not hasattr(importlib.import_module(module), attr):
            missing.append(cmd["python_name"])
    assert not missing


def test_cli_entry_runs():
    proc = subprocess.run([sys.executable, "-m", "napari_hdcyclegan", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "denoise" in proc.stdout and "boundaries" in proc.stdout
