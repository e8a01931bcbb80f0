"""HDcycleGAN generator and shared three-class discriminator (paper Tables A.1 and A.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..stages import GENERATOR_STAGES, generator_stages  # noqa: F401 - re-exported

#: Discriminator class indices: real high-noise, real low-noise, fake.
CLASS_HN, CLASS_LN, CLASS_FAKE = 0, 1, 2


def _conv_block(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Conv -> InstanceNorm (-> ReLU), zero 'same' padding as in the reference code."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
        nn.InstanceNorm2d(c_out, affine=True),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """``n_convs`` 3x3 convolutions with an identity shortcut; ReLU after the sum."""

    def __init__(self, channels: int, n_convs: int) -> None:
        super().__init__()
        convs = [_conv_block(channels, channels) for _ in range(n_convs - 1)]
        convs.append(_conv_block(channels, channels, act=False))
        self.body = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class UpBlock(nn.Module):
    """Bilinear x2 up-sampling followed by a 3x3 conv (resize-convolution, no transposed conv)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = _conv_block(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(x)


class Generator(nn.Module):
    """U-shaped HDcycleGAN generator; ``width`` = channels of the first conv (16 in the paper).

    Skips are concatenated before each up-sampling stage, as in the authors' code:
    up1 sees bottleneck + down3, up2 sees up1 + down2, up3 sees up2 + down1, final sees up3 + init.
    Input height and width must be multiples of 8; :func:`pad_to_multiple` handles other sizes.

    ``residual=True`` (not in the paper) adds the input to the final conv's output, which starts at
    zero: every stage is instance-normalised, so without it the network cannot see the input's
    absolute intensity and its output level drifts between training crops and whole b-scans.
    """

    def __init__(self, width: int = 16, n_res: int = 6, residual: bool = False) -> None:
        super().__init__()
        w = width
        self.width, self.residual = width, residual
        self.init = _conv_block(1, w, kernel=7)
        self.down1 = _conv_block(w, 2 * w, stride=2)
        self.down2 = _conv_block(2 * w, 4 * w, stride=2)
        self.down3 = _conv_block(4 * w, 8 * w, stride=2)
        self.res = nn.ModuleList(ResidualBlock(8 * w, 3) for _ in range(n_res))
        self.up1 = UpBlock(16 * w, 4 * w)
        self.up2 = UpBlock(8 * w, 2 * w)
        self.up3 = UpBlock(4 * w, w)
        self.final = nn.Conv2d(2 * w, 1, 3, padding=1)
        if residual:  # start as the identity mapping
            nn.init.zeros_(self.final.weight)
            assert self.final.bias is not None
            nn.init.zeros_(self.final.bias)

    def stages(self, x: torch.Tensor):
        """Yield ``(stage_name, activation)`` for every stage of a forward pass, in order."""
        s0 = self.init(x)
        yield "init", s0
        s1 = self.down1(s0)
        yield "down1", s1
        s2 = self.down2(s1)
        yield "down2", s2
        s3 = self.down3(s2)
        yield "down3", s3
        h = s3
        for i, block in enumerate(self.res, start=1):
            h = block(h)
            yield f"res{i}", h
        h = self.up1(torch.cat([h, s3], dim=1))
        yield "up1", h
        h = self.up2(torch.cat([h, s2], dim=1))
        yield "up2", h
        h = self.up3(torch.cat([h, s1], dim=1))
        yield "up3", h
        out = self.final(torch.cat([h, s0], dim=1))
        yield "final", out + x if self.residual else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for _name, out in self.stages(x):  # noqa: B007 - the last stage's output is the result
            pass
        return out


class Discriminator(nn.Module):
    """Shared three-class discriminator: ``levels`` x (stride-2 conv + 2-conv residual block),
    global average pooling, linear layer to logits (real HN, real LN, fake).

    The paper uses 7 levels (16..1024 channels), which needs crops of at least 256x256 to keep
    a 2x2 map at the last level; smaller crops need fewer levels.
    """

    def __init__(self, width: int = 16, levels: int = 7) -> None:
        super().__init__()
        self.width, self.levels = width, levels
        blocks: list[nn.Module] = []
        c_in = 1
        for i in range(levels):
            c_out = width * 2**i
            blocks += [_conv_block(c_in, c_out, stride=2), ResidualBlock(c_out, 2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.logits = nn.Linear(c_in, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x).mean(dim=(2, 3)))


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two dims up to a multiple; return the padded tensor and original size.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., H, W)``.
    multiple : int

    Returns
    -------
    tuple
        The padded tensor (replicate-padded where the image is too small to reflect) and ``(H, W)``.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def run_generator(gen: Generator, x: torch.Tensor) -> torch.Tensor:
    """Apply ``gen`` to an (N, 1, H, W) batch of any H, W: pad to a multiple of 8, crop back.

    Parameters
    ----------
    gen : Generator
    x : torch.Tensor
        ``(N, 1, H, W)``.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H, W)``.
    """
    padded, (h, w) = pad_to_multiple(x, 8)
    return gen(padded)[..., :h, :w]


def lateral_smooth(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of a ``(..., H, W)`` batch along W (across A-scans), edges replicated.

    The same as ``scipy.ndimage.gaussian_filter1d(y, sigma, axis=-1, mode="nearest", truncate=3)``;
    ``sigma <= 0`` returns ``y`` unchanged. Models trained on column halves smooth laterally at half
    the sampling they are applied at; this restores the smoothing they learned (``ModelConfig.lateral_sigma``).

    Parameters
    ----------
    y : torch.Tensor
        ``(..., H, W)``, floating point.
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    torch.Tensor
        Same shape and dtype.
    """
    if sigma <= 0:
        return y
    radius = int(3.0 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, device=y.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(y.dtype)
    shape = y.shape
    rows = y.reshape(-1, 1, shape[-1])
    # replicate padding wider than the image: extend the edge values by hand (F.pad refuses it)
    padded = torch.cat([rows[..., :1].expand(-1, -1, radius), rows, rows[..., -1:].expand(-1, -1, radius)], -1)
    return F.conv1d(padded, kernel.view(1, 1, -1)).reshape(shape)
