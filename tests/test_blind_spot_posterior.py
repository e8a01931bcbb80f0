"""scripts/blind_spot_posterior.py: the blind spot at inference, the noise level, the posterior, the loss."""

from __future__ import annotations

import numpy as np
import torch
from conftest import load_script

from napari_hdcyclegan.model.networks import Generator

bsp = load_script("blind_spot_posterior")


def _model(seed: int = 0) -> object:
    torch.manual_seed(seed)
    model = bsp.BlindSpotGaussian(Generator(width=4, n_res=1, residual=True))
    torch.nn.init.normal_(model.gen.final.weight, std=0.1)  # residual=True starts as the identity
    torch.nn.init.normal_(model.head.weight, std=0.1)
    return model.eval()


def test_no_pixel_of_its_own_box_reaches_a_pixels_prior() -> None:
    model = _model()
    rng = np.random.default_rng(0)
    unit = rng.random((29, 37)).astype(np.float32)
    mu, v = bsp.mu_and_v(model, unit)
    for y, x in [(10, 15), (0, 0), (28, 36), (0, 20), (14, 36)]:  # inside, corners, edges
        changed = unit.copy()
        changed[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = rng.random(changed[max(y - 1, 0):y + 2,
                                                                                   max(x - 1, 0):x + 2].shape)
        mu2, v2 = bsp.mu_and_v(model, changed)
        assert mu2[y, x] == mu[y, x] and v2[y, x] == v[y, x]
        assert not np.array_equal(mu2, mu)  # the pixels around it do see the change


def test_the_posterior_runs_from_the_prior_to_the_pixel() -> None:
    unit, mu, v = np.full((4, 4), 0.8), np.full((4, 4), 0.2), np.full((4, 4), 0.04)
    assert np.allclose(bsp.posterior(unit, mu, v, 0.0), unit)  # no noise: the pixel
    assert np.allclose(bsp.posterior(unit, mu, v, 0.04), mu)  # all of v is noise: the prior
    assert np.allclose(bsp.posterior(unit, mu, v, 0.01), 0.2 + 0.75 * 0.6)
    assert np.allclose(bsp.posterior(unit, mu, v, 1.0), mu)  # g is clipped at 0


def test_the_noise_level_follows_brightness() -> None:
    rng = np.random.default_rng(1)
    mu = rng.random((64, 64))
    v = 0.001 + 0.002 * mu + 0.0005 * rng.random((64, 64))
    tissue = np.ones_like(mu, bool)
    n = bsp.noise_level(mu, v, tissue, 1.0)
    dark, bright = n[mu < 0.2].mean(), n[mu > 0.8].mean()
    assert 0.001 < dark < bright < 0.0031
    assert np.allclose(bsp.noise_level(mu, v, tissue, 0.5), 0.5 * n)


def test_the_likelihood_trains_the_variance_towards_the_error() -> None:
    model = _model(2)
    full = torch.rand(2, 1, 24, 40) * 0.1 + 0.5
    rng = np.random.default_rng(3)
    opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
    first = float(bsp.likelihood_loss(model, full, np.random.default_rng(3)))
    for _ in range(30):
        loss = bsp.likelihood_loss(model, full, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(bsp.likelihood_loss(model, full, np.random.default_rng(3))) < first


def test_the_denoiser_keeps_the_shape_and_range() -> None:
    model = _model(4)
    x = (np.random.default_rng(5).random((30, 40)) * 255).astype(np.uint8)
    out = bsp.denoiser(model, 0.5, 1.1)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
