from __future__ import annotations

import numpy as np
import pytest

from dipmed.volume import Volume, world_centre


def test_spacing_and_orientation_come_from_the_affine():
    affine = np.array([[0, 0, -2.5, 10], [-0.5, 0, 0, 20], [0, 0.7, 0, 30], [0, 0, 0, 1.0]])
    volume = Volume(np.zeros((4, 5, 6)), affine)
    assert volume.spacing == pytest.approx((0.5, 0.7, 2.5))
    assert volume.orientation == "PSL"
    assert volume.array.dtype == np.float32


def test_world_centre_is_the_middle_of_the_grid():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [1, 1, 1]
    centre = world_centre(Volume(np.zeros((5, 3, 2)), affine))
    assert centre == pytest.approx([1 + 2 * 2, 1 + 3 * 1, 1 + 4 * 0.5])


def test_a_volume_must_be_3d():
    with pytest.raises(ValueError, match="3D"):
        Volume(np.zeros((4, 4)), np.eye(4))
