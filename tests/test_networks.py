"""Generator and discriminator shapes against the paper's Tables A.1 / A.2, padding and size."""

import numpy as np
import pytest
import torch

from napari_hdcyclegan.model.networks import (
    GENERATOR_STAGES,
    Discriminator,
    Generator,
    pad_to_multiple,
    run_generator,
)

#: Table A.1 for a 1x1x512x512 input at width 16: (channels, height = width) after each stage.
TABLE_A1 = {
    "init": (16, 512), "down1": (32, 256), "down2": (64, 128), "down3": (128, 64),
    **{f"res{i}": (128, 64) for i in range(1, 7)},
    "up1": (64, 128), "up2": (32, 256), "up3": (16, 512), "final": (1, 512),
}


def test_generator_stage_shapes_match_table_a1():
    torch.manual_seed(0)
    gen = Generator(width=16).eval()
    x = torch.rand(1, 1, 512, 512)
    with torch.no_grad():  # one full-size forward (~19 GMAC)
        shapes = {name: tuple(a.shape) for name, a in gen.stages(x)}
    assert tuple(shapes) == GENERATOR_STAGES
    for name, (c, s) in TABLE_A1.items():
        assert shapes[name] == (1, c, s, s), name


def test_generator_parameter_count_is_paper_size():
    n = sum(p.numel() for p in Generator(width=16).parameters())
    assert 2.90e6 < n < 3.00e6, n  # docs/oct_notes.md: ~2.95 M


def test_final_conv_has_no_norm_or_activation():
    gen = Generator(width=4)
    assert isinstance(gen.final, torch.nn.Conv2d) and gen.final.out_channels == 1
    # no transposed convolutions anywhere (resize-convolution only)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in gen.modules())
    # a negative output must be possible (no ReLU on the output)
    with torch.no_grad():
        gen.final.bias.fill_(-5.0)
        assert gen(torch.rand(1, 1, 16, 16)).max() < 0


def test_discriminator_seven_levels_table_a2():
    torch.manual_seed(0)
    disc = Discriminator(width=16, levels=7).eval()
    shapes = []
    hooks = [disc.features[2 * i + 1].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
             for i in range(7)]
    with torch.no_grad():
        logits = disc(torch.rand(2, 1, 256, 256))
    for h in hooks:
        h.remove()
    assert shapes == [(2, 16 * 2**i, 256 // 2 ** (i + 1), 256 // 2 ** (i + 1)) for i in range(7)]
    assert shapes[-1][1] == 1024
    assert logits.shape == (2, 3)


@pytest.mark.parametrize("hw", [(496, 512), (37, 53), (9, 15), (64, 8)])
def test_run_generator_crops_back_exactly(hw):
    torch.manual_seed(0)
    gen = Generator(width=4).eval()
    x = torch.rand(2, 1, *hw)
    with torch.no_grad():
        y = run_generator(gen, x)
    assert y.shape == x.shape


def test_run_generator_needs_no_padding_for_multiples_of_8():
    torch.manual_seed(0)
    gen = Generator(width=4).eval()
    x = torch.rand(1, 1, 48, 40)
    with torch.no_grad():
        assert torch.equal(run_generator(gen, x), gen(x))
    padded, size = pad_to_multiple(torch.rand(1, 1, 37, 53))
    assert padded.shape[-2:] == (40, 56) and size == (37, 53)


def test_residual_generator_starts_as_identity_and_round_trips(tmp_path) -> None:
    """``residual=True`` adds the input to a zero-initialised final conv; the config rebuilds it."""
    from napari_hdcyclegan.model.checkpoint import ModelConfig, load_model, save_model

    gen = Generator(4, residual=True)
    x = torch.rand(1, 1, 37, 53)
    with torch.no_grad():
        assert torch.equal(run_generator(gen, x), x)
        gen.final.bias.fill_(0.25)
        assert torch.allclose(run_generator(gen, x), x + 0.25)
    config = ModelConfig(generator_width=4, residual=True)
    save_model(tmp_path / "m", {"G_L": gen}, config)
    nets, loaded = load_model(tmp_path / "m")
    assert loaded.residual and nets["G_L"].residual
    with torch.no_grad():
        assert torch.allclose(run_generator(nets["G_L"], x), x + 0.25)


@pytest.mark.parametrize("width", [1, 2, 5, 64])
@pytest.mark.parametrize("sigma", [0.0, 0.6, 1.0, 3.0])
def test_lateral_smooth_is_scipys_gaussian_along_rows(width, sigma):
    from scipy.ndimage import gaussian_filter1d

    from napari_hdcyclegan.model.networks import lateral_smooth

    x = np.random.default_rng(0).random((2, 1, 6, width)).astype(np.float32)
    out = lateral_smooth(torch.from_numpy(x), sigma).numpy()
    want = gaussian_filter1d(x, sigma, axis=-1, mode="nearest", truncate=3.0) if sigma else x
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_allclose(out, want, atol=1e-6)
    col = np.repeat(x[..., :1], width, axis=-1)  # constant along rows: nothing to smooth
    np.testing.assert_allclose(lateral_smooth(torch.from_numpy(col), sigma).numpy(), col, atol=1e-6)
