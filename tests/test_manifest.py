"""The reader's file patterns: offered for OCT files, never in the way of napari's builtins."""

from __future__ import annotations

from pathlib import Path

import npe2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "napari-hdcyclegan"
#: Extensions the builtins read too, which we claim on purpose (README: "Which reader opens what").
SHARED_ON_PURPOSE = {"*.tif", "*.tiff", "*.png", "*.jpg", "*.jpeg", "*.img", "*.dcm"}


def reader_patterns(manifest: dict) -> set[str]:
    """Every filename pattern of the manifest's readers."""
    return {p for r in manifest["contributions"]["readers"] for p in r["filename_patterns"]}


def readers_for(path: str) -> set[str]:
    """Plugins napari would offer for ``path`` (more than one: napari asks the user)."""
    pm = npe2.PluginManager.instance()
    pm.discover()
    return {r.plugin_name for r in pm.iter_compatible_readers([path])}


def test_only_deliberate_overlap_with_builtins():
    import napari_builtins

    ours = reader_patterns(yaml.safe_load((ROOT / "napari.yaml").read_text()))
    builtins = reader_patterns(yaml.safe_load(
        (Path(napari_builtins.__file__).parent / "builtins.yaml").read_text()))
    assert ours & builtins == SHARED_ON_PURPOSE
    assert all(p == p.lower() for p in ours)  # npe2 lower-cases extensions: upper-case is dead


def test_reader_patterns_are_the_format_registry():
    from napari_hdcyclegan.io.formats import READER_PATTERNS

    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text())
    assert reader_patterns(manifest) == set(READER_PATTERNS)


@pytest.mark.parametrize("name", ["scan.vol", "SCAN.E2E", "export.xml", "a.fds", "a.fda", "b.OCT"])
def test_vendor_files_open_without_a_choice(name):
    assert readers_for(name) == {PLUGIN}


@pytest.mark.parametrize("name", ["bscan.tif", "bscan.PNG", "kermany.jpeg"])
def test_shared_formats_offer_both_readers(name):
    # napari shows its reader choice (once, with "Remember this choice") only for these
    assert readers_for(name) == {PLUGIN, "napari"}


def test_shared_extensions_are_documented():
    readme = (ROOT / "README.md").read_text()
    for pattern in SHARED_ON_PURPOSE:
        assert f"`{pattern[1:]}`" in readme, pattern
    assert "Remember this choice" in readme


def test_viewer_opens_vol_without_reader_dialog(make_napari_viewer_proxy):
    pytest.importorskip("eyepy")
    from napari_hdcyclegan._sample_data import HEIDELBERG_VOL

    viewer = make_napari_viewer_proxy()
    # plugin=None is what a drop does: MultipleReaderError (the dialog) if another plugin claimed .vol
    viewer.open(str(HEIDELBERG_VOL), plugin=None)
    assert viewer.layers["heidelberg_circle"].data.shape == (1, 496, 768)
