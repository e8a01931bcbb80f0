"""training.blind_spot: the structured blind-spot term hides each centre's neighbourhood from the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.blind_spot import blind_spot_loss, box_mask
from training.config import parse_args


def _origins(shape: tuple[int, int, int], rows: int, cols: int, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Where each pixel of the masked stack takes its value from (row and column maps), and the centres."""
    hidden, source, centre = box_mask(np.random.default_rng(seed), shape, rows, cols)
    oy = np.broadcast_to(np.arange(shape[1])[None, :, None], shape).copy()
    ox = np.broadcast_to(np.arange(shape[2])[None, None, :], shape).copy()
    oy[hidden], ox[hidden] = source[1], source[2]
    return oy, ox, centre


@pytest.mark.parametrize(("rows", "cols"), [(2, 2), (1, 3), (0, 1)])
def test_no_input_value_comes_from_inside_a_centres_box(rows: int, cols: int) -> None:
    shape = (2, 48, 96)
    oy, ox, (b, cy, cx) = _origins(shape, rows, cols)
    assert len(b) > 0
    for k in range(len(b)):
        near = (np.abs(oy[b[k]] - cy[k]) <= rows) & (np.abs(ox[b[k]] - cx[k]) <= cols)
        assert not near.any(), f"centre {k} sees its own neighbourhood"


def test_hidden_boxes_take_the_box_beside_them_and_stay_in_bounds() -> None:
    shape = (3, 40, 70)
    hidden, source, centre = box_mask(np.random.default_rng(1), shape, 2, 2)
    assert np.array_equal(hidden[0], source[0]) and np.array_equal(hidden[1], source[1])
    assert set(np.abs(source[2] - hidden[2]).tolist()) == {5}
    assert source[2].min() >= 0 and source[2].max() < shape[2] and hidden[1].max() < shape[1]
    flat = np.ravel_multi_index(hidden, shape)
    assert len(np.unique(flat)) == len(flat)  # boxes never overlap
    assert set(np.ravel_multi_index(centre, shape)) <= set(flat.tolist())
    again = box_mask(np.random.default_rng(1), shape, 2, 2)
    assert all(np.array_equal(a, c) for a, c in zip(hidden + source + centre, again[0] + again[1] + again[2],
                                                    strict=True))


def test_a_crop_smaller_than_one_cell_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        box_mask(np.random.default_rng(0), (1, 6, 40), 2, 2)


def test_loss_scores_the_centres_against_the_unmasked_pixels() -> None:
    rng = np.random.default_rng(3)
    full = torch.from_numpy(rng.random((2, 1, 32, 64)).astype(np.float32))
    seen: list[torch.Tensor] = []

    def copy(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x

    loss = blind_spot_loss(copy, full, np.random.default_rng(4), 2, 2)
    hidden, source, (b, cy, cx) = box_mask(np.random.default_rng(4), (2, 32, 64), 2, 2)
    image = full[:, 0].numpy()
    masked = seen[0][:, 0].numpy()
    assert np.array_equal(masked[hidden], image[source])
    untouched = np.ones(image.shape, bool)
    untouched[hidden] = False
    assert np.array_equal(masked[untouched], image[untouched])
    expected = np.mean((masked[b, cy, cx] - image[b, cy, cx]) ** 2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert loss.item() > 0.01  # the copying network cannot know its centres' values


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "sim", "--blind-spot-weight", "1"], "need --data real"),
    (["--data", "real", "--blind-spot-weight", "-1"], "must be >= 0"),
    (["--data", "real", "--blind-spot-weight", "1", "--blind-spot-rows", "-1"], "must be >= 0"),
])
def test_blind_spot_flags_are_checked(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)
