"""What a model's normalisation changes in a b-scan before the generator (napari_hdcyclegan.adjustments)."""

import numpy as np
import pytest
import torch

from napari_hdcyclegan.adjustments import floor_offset, lift, lower


def _batch() -> torch.Tensor:
    rng = np.random.default_rng(0)
    black = rng.random((20, 50)).astype(np.float32)
    black[:2] = 0.0  # 2 % of the pixels black: the training scans' background
    grey = 0.3 + 0.7 * rng.random((20, 50)).astype(np.float32)
    return torch.from_numpy(np.stack([black, grey]))


def test_floor_offset_takes_a_raised_background_down_and_leaves_a_black_one_alone():
    norm = {"method": "dtype", "floor_percentile": 1.0}
    unit = _batch()
    offset = floor_offset(unit, norm)
    assert offset is not None and offset.shape == (2, 1, 1)
    assert float(offset[0]) == 0.0
    assert float(offset[1]) == pytest.approx(float(np.sort(unit[1].numpy().ravel())[9]), abs=1e-7)  # 10th of 1000
    assert floor_offset(unit[:1], norm) is None  # nothing raised: nothing to do
    assert floor_offset(unit[1:], {"method": "dtype"}) is None  # not asked for


def test_floor_offset_without_kthvalue_sorts_to_the_same_value(monkeypatch):
    norm = {"method": "dtype", "floor_percentile": 1.0}
    unit = _batch()
    expected = floor_offset(unit, norm)

    def missing(*args, **kwargs):
        raise NotImplementedError("kthvalue is not implemented for this device")

    monkeypatch.setattr(torch.Tensor, "kthvalue", missing)
    torch.testing.assert_close(floor_offset(unit, norm), expected)


def test_lift_and_lower_undo_each_other_and_take_the_offset_before_the_gain():
    unit = _batch()
    norm = {"method": "dtype", "floor_percentile": 1.0, "dim_median": 0.6}
    lifted, gain, offset = lift(unit.clone(), norm)
    assert offset is not None and gain is not None and float(lifted.min()) >= 0.0
    # the gain is measured on the b-scan with its background taken down
    shifted_median = float((unit[1] - offset[1]).clamp(0, 1).median())
    assert float(gain[1]) == pytest.approx(min(0.6 / shifted_median, 2.0), rel=1e-5)
    inside = (unit - offset) * gain <= 1.0  # where neither clamp acted, lower() gives the b-scan back
    torch.testing.assert_close(lower(lifted, gain, offset)[inside & (unit >= offset)], unit[inside & (unit >= offset)])
    untouched, g, o = lift(unit.clone(), {"method": "dtype"})
    assert g is None and o is None and torch.equal(untouched, unit)
