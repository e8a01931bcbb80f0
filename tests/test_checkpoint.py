"""Model directories: round trip, half storage, and one clear error for every broken file."""

import json
import pickle

import pytest
import torch

from napari_hdcyclegan.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    ModelConfig,
    load_model,
    read_config,
    resolve_model_dir,
    save_model,
    valid_lateral_sigma,
)


def _config(width: int = 4) -> ModelConfig:
    return ModelConfig(generator_width=width, discriminator_width=width, discriminator_levels=3,
                       name="tiny", provenance={"steps": 3, "data": "unit test"})


def _nets(config: ModelConfig, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {part: config.build(part) for part in ("G_L", "G_H", "D")}


@pytest.fixture
def model_dir(tmp_path):
    config = _config()
    save_model(tmp_path / "m", _nets(config), config)
    return tmp_path / "m"


def test_round_trip_all_parts(tmp_path):
    config = _config()
    nets = _nets(config)
    out = save_model(tmp_path / "m", nets, config)
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded, cfg = load_model(out, parts=("G_L", "G_H", "D"))
    assert cfg == config
    for part, net in nets.items():
        ref, got = net.state_dict(), loaded[part].state_dict()
        assert ref.keys() == got.keys()
        assert all(torch.equal(ref[k], got[k]) for k in ref), part
        assert not loaded[part].training


def test_half_storage_round_trip(tmp_path):
    config = _config()
    nets = _nets(config)
    full = save_model(tmp_path / "full", nets, config)
    half = save_model(tmp_path / "half", nets, config, half=True)
    assert (half / WEIGHTS_FILE).stat().st_size < 0.6 * (full / WEIGHTS_FILE).stat().st_size
    loaded, _ = load_model(half)
    ref = nets["G_L"].state_dict()
    for key, value in loaded["G_L"].state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, ref[key].half().float(), rtol=0, atol=0)


def test_load_by_config_or_weights_file_path(model_dir):
    assert resolve_model_dir(model_dir / CONFIG_FILE) == model_dir
    assert resolve_model_dir(model_dir / WEIGHTS_FILE) == model_dir


def test_missing_directory_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="nope") as err:
        load_model(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_missing_config(model_dir):
    (model_dir / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing config.json") as err:
        load_model(model_dir)
    assert err.value.path == str(model_dir / CONFIG_FILE)


def test_missing_weights(model_dir):
    (model_dir / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors") as err:
        load_model(model_dir)
    assert err.value.path == str(model_dir / WEIGHTS_FILE)


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5])
def test_truncated_weights(model_dir, keep):
    path = model_dir / WEIGHTS_FILE
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError) as err:
        load_model(model_dir)
    assert err.value.path == str(path)
    assert "empty" in err.value.reason or "truncated or corrupt" in err.value.reason


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"format": "something-else"}', "\xff\xfe"])
def test_corrupt_config(model_dir, text):
    (model_dir / CONFIG_FILE).write_text(text, encoding="latin-1")
    with pytest.raises(CheckpointError) as err:
        load_model(model_dir)
    assert err.value.path == str(model_dir / CONFIG_FILE)


def test_mismatched_width(model_dir):
    data = json.loads((model_dir / CONFIG_FILE).read_text())
    data["generator_width"] = 8
    (model_dir / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="shape") as err:
        load_model(model_dir)
    assert err.value.path == str(model_dir / WEIGHTS_FILE)


def test_missing_part(tmp_path):
    config = _config()
    save_model(tmp_path / "g", {"D": config.build("D")}, config)
    with pytest.raises(CheckpointError, match="no weights for G_L"):
        load_model(tmp_path / "g")


def test_loading_never_unpickles(model_dir, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    nets, _ = load_model(model_dir)
    assert "G_L" in nets


def test_pickle_disguised_as_safetensors_is_rejected(model_dir):
    # a torch.save pickle under the safetensors name must not be executed or accepted
    torch.save({"G_L.init.0.weight": torch.zeros(1)}, model_dir / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(model_dir)


def test_read_config_keeps_provenance(model_dir):
    cfg = read_config(model_dir)
    assert cfg.provenance == {"steps": 3, "data": "unit test"}
    assert cfg.normalisation["method"] == "percentile"


# ---------------------------------------------------------------- issue 10: typed config, finite weights


@pytest.mark.parametrize("key,value,match", [
    ("generator_width", "16", "generator_width must be an integer"),
    ("generator_width", True, "generator_width must be an integer"),
    ("n_res", 10**9, "n_res must be an integer from 0 to 64"),
    ("format_version", "2", "format_version must be an integer"),
    ("residual", "yes", "residual must be true or false"),
    ("name", 3, "name must be a string"),
    ("normalisation", {"method": "zscore"}, "normalisation must be an object"),
    ("normalisation", {"method": "percentile", "low": "0.5"}, "low must be a percentile"),
    ("provenance", [], "provenance must be a JSON object"),
    ("lateral_sigma", -1.0, "lateral_sigma must be a number from 0 to 16"),
    ("lateral_sigma", "1", "lateral_sigma must be a number from 0 to 16"),
    ("lateral_sigma", True, "lateral_sigma must be a number from 0 to 16"),
])
def test_wrongly_typed_config_values_are_clear_errors(model_dir, key, value, match):
    from napari_hdcyclegan.errors import HDCycleGANError

    path = model_dir / CONFIG_FILE
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(HDCycleGANError, match=match):
        load_model(model_dir)


@pytest.mark.parametrize("value,ok", [
    (0, True), (0.0, True), (1.3, True), (16, True), (16.0, True),
    (-1e-9, False), (16.001, False), (float("nan"), False), (float("inf"), False),
    (True, False), ("1", False), (None, False),
])
def test_valid_lateral_sigma_is_a_number_from_0_to_16_pixels(value, ok):
    assert valid_lateral_sigma(value) is ok


def test_nan_weights_are_refused(tmp_path):
    config = _config()
    nets = _nets(config)
    with torch.no_grad():
        next(nets["G_L"].parameters())[0] = float("nan")
    save_model(tmp_path / "m", nets, config)
    with pytest.raises(CheckpointError, match="NaN or infinite weights"):
        load_model(tmp_path / "m")
