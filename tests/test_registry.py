"""User models directory: listed beside the shipped models, resolved by name, in the CLI and choosers."""

from __future__ import annotations

import shutil

import pytest

from napari_hdcyclegan.__main__ import main
from napari_hdcyclegan.model import registry
from napari_hdcyclegan.model.checkpoint import CheckpointError, resolve_model_dir, shipped_models


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A per-test user data directory (never the real home)."""
    monkeypatch.setenv(registry.USER_DIR_ENV, str(tmp_path / "user"))
    return tmp_path / "user"


@pytest.fixture
def user_model(user_dir, tiny_model):
    """The tiny model copied into the user models directory as ``mine``."""
    target = registry.user_models_dir() / "mine"
    shutil.copytree(tiny_model, target)
    return target


def test_user_dir_follows_env(user_dir):
    assert registry.user_data_dir() == user_dir
    assert registry.user_models_dir() == user_dir / "models"
    assert registry.user_runs_dir() == user_dir / "runs"
    assert registry.user_models() == []


def test_default_user_dir_is_platformdirs(monkeypatch):
    import platformdirs

    monkeypatch.delenv(registry.USER_DIR_ENV, raising=False)
    assert registry.user_data_dir() == registry.Path(platformdirs.user_data_dir("napari-hdcyclegan"))


def test_user_model_listed_and_resolved(user_model):
    entries = {e.name: e for e in registry.list_models()}
    assert entries["mine"].origin == "user" and entries["mine"].trained
    assert all(entries[n].origin == "shipped" for n in shipped_models())
    assert resolve_model_dir("mine") == user_model
    with pytest.raises(CheckpointError, match="mine"):
        resolve_model_dir("not-a-model")


def test_shipped_name_wins_and_is_refused_for_new_models(user_dir, tiny_model):
    assert shipped_models(), "the package ships its models"
    name = shipped_models()[0]
    shutil.copytree(tiny_model, registry.user_models_dir() / name)
    assert resolve_model_dir(name) == registry.SHIPPED_DIR / name
    assert [e.origin for e in registry.list_models() if e.name == name] == ["shipped"]
    with pytest.raises(ValueError, match="shipped"):
        registry.check_model_name(name)


@pytest.mark.parametrize("bad", ["", "../x", "a b", "/abs", "x" * 65])
def test_bad_model_names(bad):
    with pytest.raises(ValueError):
        registry.check_model_name(bad)


def test_cli_models_lists_shipped_and_user(user_model, capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split("\t")[0]: line.split("\t") for line in lines}
    assert rows["mine"][1:3] == ["user", "trained"]
    for name in shipped_models():
        assert rows[name][1] == "shipped"


def test_weights_choices_offer_user_models(user_dir, tiny_model):
    from napari_hdcyclegan._widgets._common import weights_choices

    assert "mine" not in [v for _, v in weights_choices()]
    shutil.copytree(tiny_model, registry.user_models_dir() / "mine")
    assert ("mine (yours)", "mine") in weights_choices()


def test_cli_models_lists_auto_first_as_the_default(user_dir, capsys):
    from napari_hdcyclegan.engine import DEFAULT_MODEL
    from napari_hdcyclegan.model import choice

    assert main(["models"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split("\t")
    assert DEFAULT_MODEL == choice.AUTO
    assert first[:2] == [choice.AUTO, "default"]
    assert choice.SINGLE_FRAME_MODEL in first[2] and choice.AVERAGED_MODEL in first[2]


def test_each_shipped_model_card_names_the_weights_it_describes():
    """No test pins a shipped model's scores, so swapped weights left the card's and README's figures
    stale with CI green; a card now names the sha256 its figures were measured with."""
    import json

    from napari_hdcyclegan.model.layout import SHIPPED_DIR

    names = shipped_models()
    assert names  # the package ships its models
    for name in names:
        config = json.loads((SHIPPED_DIR / name / "config.json").read_text())
        sha = config["provenance"]["weights_sha256"]
        assert f"`{sha}`" in (SHIPPED_DIR / name / "MODEL_CARD.md").read_text(), (
            f"{name}: MODEL_CARD.md does not name the weights {sha[:12]}...; the card (and the README's "
            "figures for this model) describe other weights: measure these and update them")
