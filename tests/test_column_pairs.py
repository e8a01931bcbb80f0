"""napari_hdcyclegan.column_pairs: column-half crops and the Neighbor2Neighbor consistency term."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_hdcyclegan.column_pairs import full_crops, neighbour_loss, shifted_halves, split_crops
from napari_hdcyclegan.metrics import column_halves


def _image(seed: int = 0, shape: tuple[int, int] = (40, 70)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_full_crops_are_windows_of_the_images_two_half_crops_wide() -> None:
    images = [_image(0), _image(1, (30, 50))]
    full, parity = full_crops(np.random.default_rng(3), images, (16, 12), 20)
    assert full.shape == (20, 1, 16, 24) and full.dtype == np.float32 and full.flags.c_contiguous
    assert set(parity) == {0, 1}
    for patch in full[:, 0]:
        found = False
        for im in images:
            for candidate in (patch, patch[:, ::-1]):
                hits = [(r, c) for r in range(im.shape[0] - 15) for c in range(im.shape[1] - 23)
                        if np.array_equal(im[r:r + 16, c:c + 24], candidate)]
                found = found or bool(hits)
        assert found


def test_full_crops_are_reproducible_for_a_seed() -> None:
    a = full_crops(np.random.default_rng(5), [_image()], (8, 8), 4)
    b = full_crops(np.random.default_rng(5), [_image()], (8, 8), 4)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_split_crops_pair_one_half_with_the_other() -> None:
    im = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    xs, ys, picked = split_crops(np.random.default_rng(0), [column_halves(im)], (8, 6), 10)
    assert picked == [0] * 10
    for x, y in zip(xs, ys):
        assert x.shape == y.shape == (8, 6)
        assert np.all(np.abs(x - y) == 1)  # neighbouring columns of a ramp: one apart, either way round


def test_the_identity_pays_no_consistency_penalty() -> None:
    full = torch.from_numpy(full_crops(np.random.default_rng(1), [_image()], (16, 16), 3)[0])
    parity = [0, 1, 1]
    total, mse = neighbour_loss(lambda x: x, full, parity, 4.0)
    # out - target is exactly the difference of the output's own halves
    assert torch.allclose(total, mse) and mse > 0
    plain, plain_mse = neighbour_loss(lambda x: x, full, parity, 0.0)
    assert torch.equal(plain, plain_mse) and torch.allclose(plain, mse)


def test_a_lateral_blur_is_penalised_on_a_steep_edge() -> None:
    rows = np.arange(32)[:, None]
    cols = np.arange(32)[None, :]
    edge = (rows > 4 + cols * 0.75).astype(np.float32)  # a layer edge rising 0.75 px per A-scan
    full = torch.from_numpy(edge)[None, None].repeat(2, 1, 1, 1)
    parity = [0, 1]

    def blur(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, (1, 3), stride=1, padding=(0, 1), count_include_pad=False)

    total, mse = neighbour_loss(blur, full, parity, 1.0)
    assert float(total) > float(mse) > 0


def test_profile_term_sees_a_flattened_line_not_the_identity() -> None:
    line = np.zeros((24, 32), np.float32)
    line[10] = 1.0  # a thin bright line across the crop
    full = torch.from_numpy(line)[None, None].repeat(2, 1, 1, 1)
    parity = [0, 1]

    def flatten(x: torch.Tensor) -> torch.Tensor:  # the line's energy spread over three rows
        return torch.nn.functional.avg_pool2d(x, (3, 1), stride=1, padding=(1, 0))

    plain, mse = neighbour_loss(flatten, full, parity, 0.0)
    with_profile, same_mse = neighbour_loss(flatten, full, parity, 0.0, profile=2.0, profile_width=8)
    assert torch.equal(mse, same_mse) and float(with_profile) > float(plain) > 0
    for anchor in ("input", "target"):  # both halves hold the same flat-topped line
        total, mse = neighbour_loss(lambda x: x, full, parity, 0.0, profile=2.0, profile_anchor=anchor)
        assert float(total) == float(mse) == 0.0


def test_profile_term_against_the_input_half_or_the_other() -> None:
    full = torch.from_numpy(full_crops(np.random.default_rng(2), [_image()], (16, 16), 2)[0])
    parity = [0, 1]
    to_input, mse = neighbour_loss(lambda x: x, full, parity, 0.0, profile=1.0, profile_anchor="input")
    to_target, _ = neighbour_loss(lambda x: x, full, parity, 0.0, profile=1.0, profile_anchor="target")
    assert torch.allclose(to_input, mse)  # the identity keeps its own input's profile exactly
    assert float(to_target) > float(mse)  # but not the other half's noise


def test_shifted_halves_start_gap_columns_apart() -> None:
    im = np.tile(np.arange(21, dtype=np.float32), (4, 1))
    even, odd = shifted_halves(im, 3)
    assert even.shape == odd.shape == (4, 9)
    np.testing.assert_array_equal(odd - even, 3)
    assert all(np.array_equal(a, b) for a, b in zip(shifted_halves(im, 1), column_halves(im)))
    for bad in (2, 0, 11, 3.5, True):
        with pytest.raises(ValueError, match="must be odd"):
            shifted_halves(im, bad)
    with pytest.raises(ValueError, match="no columns 9 apart"):
        shifted_halves(im[:, :8], 9)


@pytest.mark.parametrize("gap", [1, 3, 7])
def test_the_gap_sets_the_distance_between_input_and_target(gap: int) -> None:
    ramp = np.tile(np.arange(80, dtype=np.float32), (16, 1))
    full, parity = full_crops(np.random.default_rng(2), [ramp], (16, 16), 6, gap)
    assert full.shape == (6, 1, 16, 32 if gap == 1 else 40) and set(parity) == {0, 1}
    total, mse = neighbour_loss(lambda x: x, torch.from_numpy(full), parity, 4.0, gap=gap)
    # a ramp of one per column: every target pixel is gap away from its input; the identity's own
    # halves are as far apart, so the consistency term adds nothing
    assert float(mse) == pytest.approx(gap ** 2) and torch.allclose(total, mse)
