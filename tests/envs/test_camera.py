"""μ-law camera bins: VPT's bin centres, exact bin round trips, hand-computed cases, the joint 121-way index."""

import numpy as np
import pytest

from system.envs.camera import MINECRAFT_CAMERA, CameraQuantizer

# Bin centres in degrees for camera_maxval 10, binsize 2, mu 10 (VPT agent.py), as listed in data-formats.md.
VPT_BIN_CENTRES = [-10, -5.81, -3.22, -1.61, -0.62, 0, 0.62, 1.61, 3.22, 5.81, 10]


def test_vpt_parameters_and_bin_centres():
    q = MINECRAFT_CAMERA
    assert (q.maxval, q.binsize, q.mu) == (10, 2, 10)
    assert q.bins_per_axis == 11 and q.num_classes == 121 and q.null_index == 60
    np.testing.assert_allclose(q.from_bins(np.arange(11)), VPT_BIN_CENTRES, atol=0.006)


def test_bins_round_trip_exactly_for_every_class():
    q = MINECRAFT_CAMERA
    classes = np.arange(q.num_classes)
    np.testing.assert_array_equal(q.encode(q.decode(classes)), classes)
    np.testing.assert_array_equal(q.to_bins(q.from_bins(np.arange(11))), np.arange(11))


def test_hand_computed_degrees():
    q = MINECRAFT_CAMERA
    # 1.0 deg: 10 * ln(1 + 10*0.1) / ln(11) = 2.89 -> (2.89 + 10) / 2 = 6.45 -> bin 6 (0.62 deg).
    # 1.2 deg: 10 * ln(2.2) / ln(11) = 3.29 -> 6.64 -> bin 7 (1.61 deg).
    assert q.to_bins(np.array(1.0)) == 6 and q.to_bins(np.array(1.2)) == 7
    assert q.to_bins(np.array(0.0)) == 5
    assert q.to_bins(np.array(45.0)) == 10 and q.to_bins(np.array(-179.0)) == 0   # saturates at ±10 deg
    assert q.encode(np.array([3.22, -10.0])) == 8 * 11 + 0                       # pitch bin major, yaw minor
    np.testing.assert_allclose(q.decode(np.array(88)), [3.22, -10.0], atol=0.006)


def test_degrees_round_trip_is_the_nearest_bin_in_the_mu_law_domain():
    q = MINECRAFT_CAMERA
    degrees = np.linspace(-10, 10, 2001)
    decoded = q.from_bins(q.to_bins(degrees))
    compress = lambda d: np.sign(d) * np.log1p(10 * np.abs(d) / 10) / np.log1p(10) * 10
    # Within half a bin (1 unit of the 2-unit grid) in the compressed domain, and monotone in degrees.
    assert np.max(np.abs(compress(decoded) - compress(degrees))) <= 1.0 + 1e-9
    assert np.all(np.diff(q.to_bins(degrees)) >= 0)
    # Small moves keep their sign: the fine bins near zero are what μ-law is for.
    assert q.to_bins(np.array(0.4)) == 6 and q.to_bins(np.array(-0.4)) == 4


def test_out_of_range_classes_are_rejected():
    with pytest.raises(ValueError, match="121"):
        MINECRAFT_CAMERA.decode(np.array([121]))
    with pytest.raises(ValueError):
        MINECRAFT_CAMERA.from_bins(np.array([-1]))
    assert CameraQuantizer(maxval=20, binsize=4).bins_per_axis == 11
