"""PyAV mp4 reading/writing and frame resizing."""

import numpy as np
import pytest
import torch

from system.data.errors import DataError
from system.data.video import count_frames, probe_video, read_frames, write_video
from system.envs.resize import resize_frames
from tests.data.fixture_files import number_frame, read_number


def test_write_then_read_is_exact_for_block_frames(tmp_path):
    frames = np.stack([number_frame(i) for i in range(40)])
    write_video(tmp_path / "v.mp4", frames)
    info = probe_video(tmp_path / "v.mp4")
    assert (info.width, info.height, info.fps) == (64, 64, 20.0) and count_frames(tmp_path / "v.mp4") == 40
    np.testing.assert_array_equal(read_frames(tmp_path / "v.mp4"), frames)
    window = read_frames(tmp_path / "v.mp4", start=5, count=10)
    assert [read_number(f) for f in window] == list(range(5, 15))
    with pytest.raises(DataError, match="only 40 frames, need 41"):
        read_frames(tmp_path / "v.mp4", start=1, count=40)


def test_read_resizes_and_checks_resolution(tmp_path):
    frames = np.stack([number_frame(i, 360, 640) for i in range(3)])
    write_video(tmp_path / "big.mp4", frames)
    small = read_frames(tmp_path / "big.mp4", size=(64, 64), expect_size=(360, 640))
    assert small.shape == (3, 64, 64, 3) and [read_number(f) for f in small] == [0, 1, 2]
    with pytest.raises(DataError, match="wrong resolution"):
        read_frames(tmp_path / "big.mp4", expect_size=(64, 64))
    with pytest.raises(DataError, match="missing file"):
        read_frames(tmp_path / "absent.mp4")
    (tmp_path / "text.mp4").write_text("hello")
    with pytest.raises(DataError, match="cannot open video"):
        read_frames(tmp_path / "text.mp4")


def test_area_resize_is_a_box_average_and_bilinear_matches_torch():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    area = resize_frames(frames, (4, 6), "area")
    expected = frames.reshape(2, 4, 2, 6, 2, 3).astype(np.float64).mean(axis=(2, 4))
    np.testing.assert_array_equal(area, np.round(expected).astype(np.uint8))
    bilinear = resize_frames(frames, (5, 7), "bilinear")
    reference = torch.nn.functional.interpolate(torch.tensor(frames).permute(0, 3, 1, 2).float(), (5, 7),
                                                mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(bilinear, reference.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())
    assert resize_frames(frames[0], (4, 6)).shape == (4, 6, 3)
    assert resize_frames(frames, (8, 12)) is frames
    with pytest.raises(ValueError):
        resize_frames(frames.astype(np.float32), (4, 6))
