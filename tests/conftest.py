"""Fixtures shared by the widget, CLI, evaluation and training tests: tiny model directories, the
resident-model release, cartoon volumes and the speckled domains of the training tests."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the run's status for :func:`pytest_unconfigure`."""
    session.config._hdcyclegan_status = int(exitstatus)  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After every report and plugin teardown (pytest-xvfb's display included), leave without the
    interpreter's finalisation when Qt was loaded: Qt/vispy objects torn down there have crashed the
    process (SIGSEGV, no Python frame) after all tests had passed, turning a green run red. The exit
    status stays pytest's."""
    status = getattr(config, "_hdcyclegan_status", None)
    if status is None or "PyQt6.QtWidgets" not in sys.modules:
        return
    xvfb = sys.modules.get("pytest_xvfb")
    if xvfb is not None:  # it stops its Xvfb in an atexit handler, which os._exit skips: one left per run
        xvfb.shutdown_xvfb()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_model(tmp_path):
    """A model directory with a width-4 generator (random but fixed weights)."""
    torch = pytest.importorskip("torch")
    from napari_hdcyclegan.model import Generator, ModelConfig, save_model

    torch.manual_seed(0)
    config = ModelConfig(generator_width=4, discriminator_width=4, discriminator_levels=3,
                         name="tiny", trained=True)
    return save_model(tmp_path / "tiny", {"G_L": Generator(width=4)}, config)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A width-4 model directory shared by a module's CLI tests (random but fixed weights)."""
    torch = pytest.importorskip("torch")
    from napari_hdcyclegan.model.checkpoint import ModelConfig, save_model
    from napari_hdcyclegan.model.networks import Generator

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_model(path, {"G_L": Generator(4)}, ModelConfig(generator_width=4, name="tiny", trained=True))
    return path


@pytest.fixture
def release_engine():
    """Drop the resident models after a test, so the next one loads its own."""
    yield
    from napari_hdcyclegan import engine

    engine.release()


def cartoon_retina(n: int, h: int, w: int, bands: tuple[tuple[int, int, float], ...],
                   seed: int | None = 0) -> np.ndarray:
    """A cartoon retina: background 25 plus ``gain`` on rows ``top:bottom`` of each band; with a
    ``seed``, multiplied by gamma speckle and cast to uint8, else noise-free float64."""
    rows = np.arange(h)[:, None]
    clean = np.full((h, 1), 25.0)
    for top, bottom, gain in bands:
        clean = clean + gain * ((rows >= top) & (rows < bottom))
    clean = np.broadcast_to(clean, (n, h, w)).astype(np.float64)
    if seed is None:
        return clean
    rng = np.random.default_rng(seed)
    return np.clip(clean * rng.gamma(4.0, 0.25, size=clean.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def cartoon_volume() -> Callable[..., np.ndarray]:
    """:func:`cartoon_retina`, for tests that build small synthetic volumes."""
    return cartoon_retina


def linear_oct(shape: tuple[int, ...] = (200, 300), seed: int = 0) -> np.ndarray:
    """Linear OCT intensities (float32): a bright retina band over a dark vitreous, with exponential speckle;
    a stack when ``shape`` has three axes."""
    rows = np.arange(shape[-2])[:, None]
    band = (rows > shape[-2] * 0.3) & (rows < shape[-2] * 0.65)
    scene = np.where(band, 0.3, 0.004) * np.ones(shape[-2:])
    return (scene * np.random.default_rng(seed).exponential(1.0, shape)).astype(np.float32)


@pytest.fixture
def linear_scan() -> Callable[..., np.ndarray]:
    """:func:`linear_oct`, for tests of what is said about linear-intensity inputs."""
    return linear_oct


def speckled_domain(seed: int, noise: float, n: int = 3, size: int = 40) -> np.ndarray:
    """(n, size, size) uint8 banded b-scans with gamma speckle of strength ``noise``: one training
    domain (HN with strong, LN with weak speckle). Imported by the training job and Train widget tests."""
    rng = np.random.default_rng(seed)
    rows = np.arange(size)[:, None]
    clean = np.where((rows > 12) & (rows < 28), 180.0, 40.0) * np.ones((n, size, size))
    return np.clip(clean * rng.gamma(1 / noise**2, noise**2, clean.shape), 0, 255).astype(np.uint8)
