"""VPT reader on fixture segments written in the real format (640x360 H.264 mp4 + one JSON object per frame)."""

import json

import numpy as np
import pytest

from system.data.errors import DataError
from system.data.vpt_reader import (
    VptOptions,
    describe_vpt_segment,
    find_vpt_segments,
    parse_vpt_actions,
    read_vpt_segment,
)
from system.envs.action_space import minecraft_action_space
from tests.data.fixture_files import read_number, vpt_line, write_vpt_segment

SPACE = minecraft_action_space()
CAM = SPACE.column("camera")


def col(name):
    return SPACE.column(name)


def test_one_line_by_hand(tmp_path):
    write_vpt_segment(tmp_path, "seg", [vpt_line(keys=("w", "space", "k"), dx=24, dy=-16, buttons=(0, 2))], frames=1)
    parsed = parse_vpt_actions(tmp_path / "seg.jsonl")
    action = parsed.actions[0]
    assert action[col("forward")] == action[col("jump")] == action[col("attack")] == action[col("pickItem")] == 1
    assert action[col("use")] == action[col("back")] == 0 and not parsed.null[0]
    # camera [dy, dx] * 360/2400 = [-2.4, 3.6] deg: pitch -> bin 2, yaw -> bin 8 (μ-law, by hand) -> 2*11 + 8
    assert action[CAM] == 30
    assert action.sum() - action[CAM] == 4   # exactly four keys down; 'k' is not a mapped key


def test_null_actions_are_dropped_and_steps_follow_the_project_convention(tmp_path):
    lines = [vpt_line(), vpt_line(keys=("w",)), vpt_line(), vpt_line(keys=("k",)), vpt_line(dx=5.0),
             vpt_line(buttons=(1,)), vpt_line()]
    write_vpt_segment(tmp_path, "seg", lines)
    (segment,), skipped = find_vpt_segments(tmp_path)
    assert not skipped and segment.episode_id == "vpt/seg"
    episode = read_vpt_segment(segment, size=(64, 64))
    # Kept pairs (frame i, action i) for non-null lines 1, 4, 5; step j = frame k_j with action k_{j-1}.
    assert [read_number(f) for f in episode.frames] == [1, 4, 5]
    assert (episode.actions[0] == -1).all()
    assert episode.actions[1, col("forward")] == 1 and episode.actions[1, CAM] == 60   # line 1: forward
    assert episode.actions[2, col("forward")] == 0 and episode.actions[2, CAM] != 60   # line 4: mouse moved
    assert not episode.terminals.any() and not episode.rewards.any()
    assert episode.metadata["null_dropped"] == 4

    everything = read_vpt_segment(segment, options=VptOptions(drop_null_actions=False))
    assert [read_number(f) for f in everything.frames] == list(range(7))
    assert everything.actions[2, col("forward")] == 1 and everything.actions[6, col("use")] == 1


def test_stuck_attack_and_scroll_wheel_hotbar(tmp_path):
    lines = [
        vpt_line(buttons=(0,), new_buttons=(0,)),          # attack held from the start: stuck, ignored
        vpt_line(buttons=(0,), keys=("w",)),               # still stuck
        vpt_line(buttons=(0,), new_buttons=(0,)),          # pressed anew: real attack
        vpt_line(hotbar=2),                                # scroll alone: hotbar.3 pressed but the step is null
        vpt_line(hotbar=2, keys=("w",)),                   # same slot: no press
        vpt_line(hotbar=4, keys=("w",)),                   # scroll + key: hotbar.5 pressed
    ]
    write_vpt_segment(tmp_path, "seg", lines, frames=6)
    parsed = parse_vpt_actions(tmp_path / "seg.jsonl")
    assert parsed.actions[:3, col("attack")].tolist() == [0, 0, 1]
    assert parsed.null.tolist() == [True, False, False, True, False, False]
    assert parsed.actions[3, col("hotbar.3")] == 1 and parsed.actions[4, col("hotbar.3")] == 0
    assert parsed.actions[5, col("hotbar.5")] == 1
    raw = parse_vpt_actions(tmp_path / "seg.jsonl", VptOptions(fix_stuck_attack=False, hotbar_from_state=False))
    assert raw.actions[:3, col("attack")].tolist() == [1, 1, 1] and raw.actions[:, col("hotbar.5")].sum() == 0


def test_camera_beyond_180_degrees_is_zeroed(tmp_path):
    write_vpt_segment(tmp_path, "seg", [vpt_line(dx=2400.0, dy=-8.0)], frames=1)
    parsed = parse_vpt_actions(tmp_path / "seg.jsonl")
    # pitch -8 * 0.15 = -1.2 deg -> bin 3 (mirror of 1.2 -> 7); yaw 2400 * 0.15 = 360 deg -> zeroed -> bin 5
    assert parsed.actions[0, CAM] == 3 * 11 + 5


def test_cursor_is_drawn_while_a_gui_is_open(tmp_path):
    # Mouse at (320, 180) in 720p window coordinates -> (160, 90) in the 640x360 frame: a black block of frame 1.
    lines = [vpt_line(keys=("e",)), vpt_line(keys=("w",), gui=True, x=320, y=180), vpt_line(keys=("w",))]
    write_vpt_segment(tmp_path, "seg", lines)
    (segment,), _ = find_vpt_segments(tmp_path)
    with_cursor = read_vpt_segment(segment, size=(360, 640))
    without = read_vpt_segment(segment, size=(360, 640), options=VptOptions(draw_cursor=False))
    region = (slice(90, 106), slice(160, 176))
    assert without.frames[1][region].max() == 0
    assert with_cursor.frames[1][region].max() == 255 and with_cursor.frames[1][region].min() == 0
    np.testing.assert_array_equal(with_cursor.frames[[0, 2]], without.frames[[0, 2]])
    assert with_cursor.metadata["gui_frames"] == 1


def test_describe_and_discovery(tmp_path):
    write_vpt_segment(tmp_path / "6.13", "alias-abc-20220101-000000", [vpt_line(), vpt_line(keys=("w",))] * 3)
    (tmp_path / "6.13" / "orphan.jsonl").write_text(json.dumps(vpt_line()) + "\n")
    write_vpt_segment(tmp_path, "novideo", [vpt_line()])
    (tmp_path / "novideo.jsonl").unlink()
    segments, skipped = find_vpt_segments(tmp_path)
    assert [s.name for s in segments] == ["6.13/alias-abc-20220101-000000"]
    assert sorted(e.reason for _, e in skipped) == ["missing .jsonl actions file", "missing .mp4 video"]
    info = describe_vpt_segment(segments[0])
    assert (info.steps, info.video_frames, info.extra_frames) == (3, 6, 3)


@pytest.mark.parametrize("kind", ["bad json", "missing field", "short video", "wrong resolution", "truncated"])
def test_bad_input_names_file_and_reason(tmp_path, kind):
    lines = [vpt_line(keys=("w",))] * 4
    size, frames = (360, 640), None
    if kind == "short video":
        frames = 3
    if kind == "wrong resolution":
        size = (180, 320)
    mp4 = write_vpt_segment(tmp_path, "seg", lines, size=size, frames=frames)
    jsonl = tmp_path / "seg.jsonl"
    if kind == "bad json":
        jsonl.write_text(jsonl.read_text().replace("}\n", "\n", 2)[:-1] + "\n")
        expected = (jsonl, "line 1: invalid JSON")
    elif kind == "missing field":
        broken = vpt_line()
        del broken["mouse"]["dx"]
        jsonl.write_text(jsonl.read_text() + json.dumps(broken) + "\n")
        expected = (jsonl, "line 5: missing field 'mouse.dx'")
    elif kind == "short video":
        expected = (mp4, "frame count too small: video has 3 frames")
    elif kind == "wrong resolution":
        expected = (mp4, "wrong resolution: frames are 320x180")
    else:
        mp4.write_bytes(mp4.read_bytes()[:300])
        expected = (mp4, "video")
    (segment,), _ = find_vpt_segments(tmp_path)
    with pytest.raises(DataError, match=expected[1]) as caught:
        read_vpt_segment(segment)
    assert caught.value.path == str(expected[0])


def test_fields_of_the_wrong_type_name_the_line(tmp_path):
    bad = vpt_line()
    bad["mouse"]["dx"] = "fast"
    write_vpt_segment(tmp_path, "seg", [vpt_line(), bad], frames=2)
    with pytest.raises(DataError, match="line 2: could not convert"):
        parse_vpt_actions(tmp_path / "seg.jsonl")
    worse = vpt_line()
    worse["keyboard"]["keys"] = 7
    (tmp_path / "seg.jsonl").write_text(json.dumps(worse) + "\n")
    with pytest.raises(DataError, match="line 1: "):
        parse_vpt_actions(tmp_path / "seg.jsonl")


def test_trailing_frames_without_an_action_line_are_counted(tmp_path):
    write_vpt_segment(tmp_path, "seg", [vpt_line(keys=("w",))] * 4, frames=7)  # 3 frames after the last line
    (segment,), _ = find_vpt_segments(tmp_path)
    episode = read_vpt_segment(segment)
    assert len(episode) == 4
    assert episode.metadata["video_frames"] == 7 and episode.metadata["trailing_frames"] == 3
    info = describe_vpt_segment(segment)
    assert (info.steps, info.video_frames, info.trailing_frames) == (4, 7, 3)
