"""The keyed LRU of resident models: hits, eviction order, freeing, clear."""

from __future__ import annotations

import pytest

from napari_hdcyclegan.resident import ResidentModels


def test_hit_returns_the_same_model_without_loading():
    cache: ResidentModels[str] = ResidentModels(capacity=2, free=lambda m: None)
    loads = []
    assert cache.get("a", lambda: loads.append("a") or "A") == "A"
    assert cache.get("a", lambda: loads.append("a") or "other") == "A"
    assert loads == ["a"]


def test_least_recently_used_is_freed_before_a_new_load():
    freed: list[str] = []
    cache: ResidentModels[str] = ResidentModels(capacity=2, free=freed.append)
    cache.get("a", lambda: "A")
    cache.get("b", lambda: "B")
    cache.get("a", lambda: "A")  # a is now the most recent

    def load_c() -> str:
        assert freed == ["B"], "the old model is freed before the new one loads"
        return "C"

    assert cache.get("c", load_c) == "C"
    assert cache.models() == ["A", "C"] and len(cache) == 2


def test_clear_frees_everything():
    freed: list[str] = []
    cache: ResidentModels[str] = ResidentModels(capacity=3, free=freed.append)
    for key in "abc":
        cache.get(key, lambda k=key: k.upper())
    cache.clear()
    assert sorted(freed) == ["A", "B", "C"] and cache.models() == []


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        ResidentModels(capacity=0)


def test_a_model_let_go_while_in_use_keeps_working():
    """A run still using an evicted model (another widget's worker) goes on: its weights stay on its
    device (they were moved to the CPU, which breaks a GPU run with a device mismatch)."""
    import numpy as np
    import torch

    from napari_hdcyclegan.denoiser import Denoiser
    from napari_hdcyclegan.model import Generator, ModelConfig
    from napari_hdcyclegan.resident import free_model

    den = Denoiser(Generator(4), ModelConfig(generator_width=4, name="tiny", trained=True), "cpu")
    before = den.denoise(np.full((16, 16), 100, np.uint8))
    moved: list[object] = []
    den.generator.to = lambda *args, **kwargs: moved.append(args)  # type: ignore[method-assign]
    free_model(den)
    assert moved == [] and all(p.device == torch.device("cpu") for p in den.generator.parameters())
    np.testing.assert_array_equal(den.denoise(np.full((16, 16), 100, np.uint8)), before)


def test_a_model_let_go_is_gone_before_the_next_one_loads():
    """The cache's own references are dropped before the memory is returned and the next model loads
    (it held the old one through both: capacity + 1 models at the peak)."""
    import weakref

    class Model:
        pass

    cache: ResidentModels[Model] = ResidentModels(capacity=1)
    ref = weakref.ref(cache.get("a", Model))
    gone_when_loading: list[bool] = []
    cache.get("b", lambda: (gone_when_loading.append(ref() is None), Model())[1])
    assert gone_when_loading == [True]
