"""MineRL v0 reader on fixture streams written in the real format (PyAV mp4, np.savez_compressed npz, json)."""

import json

import numpy as np
import pytest

from system.data.errors import DataError
from system.data.minerl_reader import describe_minerl_stream, find_minerl_streams, read_minerl_stream
from system.envs.action_space import minecraft_action_space
from system.envs.camera import MINECRAFT_CAMERA
from tests.data.fixture_files import MINERL_KEYS, read_number, write_minerl_stream

STREAM = "v3_absolute_grape_changeling-6_37339-46767"


def test_frames_align_to_actions_as_minerl_does(tmp_path):
    written = write_minerl_stream(tmp_path, "MineRLTreechop-v0", STREAM, steps=30, extra_frames=3)
    (stream,), skipped = find_minerl_streams(tmp_path)
    assert not skipped
    episode = read_minerl_stream(stream, duplicate_last_frame=False)
    assert len(episode) == 31 and episode.frames.shape == (31, 64, 64, 3)
    # Step t shows state s_t = video frame 3 + t: the 3 leading frames are skipped, not the trailing ones.
    assert [read_number(f) for f in episode.frames] == [3 + t for t in range(31)]
    space = minecraft_action_space("MineRLTreechop-v0")
    assert (episode.actions[0] == -1).all() and episode.rewards[0] == 0
    for t in range(1, 31):   # step t carries action[t-1] (which produced s_t) and reward[t-1] = t
        for key in MINERL_KEYS:
            assert episode.actions[t, space.column(key)] == written["actions"][key][t - 1]
        assert episode.actions[t, 23] == MINECRAFT_CAMERA.encode(written["actions"]["camera"][t - 1])
        assert episode.rewards[t] == t
    assert (episode.actions[1:, space.column("ESC")] == 0).all()   # keys MineRL v0 lacks are 'not pressed'
    assert episode.terminals.tolist() == [False] * 30 + [True]
    assert episode.episode_id == f"minerl/MineRLTreechop-v0/{STREAM}"
    assert episode.metadata["leading_frames_skipped"] == 3


def test_last_frame_is_duplicated_like_minerl_by_default(tmp_path):
    write_minerl_stream(tmp_path, "MineRLTreechop-v0", STREAM, steps=5, extra_frames=1)
    (stream,), _ = find_minerl_streams(tmp_path)
    episode = read_minerl_stream(stream)
    assert [read_number(f) for f in episode.frames] == [1, 2, 3, 4, 5, 5]


def test_obtain_env_with_object_enum_arrays_and_dotted_keys(tmp_path):
    written = write_minerl_stream(tmp_path, "MineRLObtainDiamond-v0", STREAM, steps=12, extra_frames=0,
                                  dotted_keys=True, enums_as_objects=True)
    (stream,), _ = find_minerl_streams(tmp_path)
    episode = read_minerl_stream(stream, size=(32, 32))
    space = minecraft_action_space("MineRLObtainDiamond-v0")
    assert episode.actions.shape == (13, 29) and episode.frames.shape == (13, 32, 32, 3)
    assert [read_number(f) for f in episode.frames[:-1]] == list(range(12))   # area-resized blocks still read
    for name in ("place", "equip", "craft", "nearbyCraft", "nearbySmelt"):
        labels = space.component(name).labels
        assert [labels[i] for i in episode.actions[1:, space.column(name)]] == list(written["actions"][name])
    assert episode.metadata["npz_keys"] == "dotted"


def test_describe_reads_no_video(tmp_path):
    write_minerl_stream(tmp_path, "MineRLNavigate-v0", STREAM, steps=20, extra_frames=2)
    (stream,), _ = find_minerl_streams(tmp_path)
    (stream.path / "recording.mp4").write_bytes(b"not decoded by describe")
    info = describe_minerl_stream(stream)
    assert (info.group, info.steps, info.actions, info.video_frames, info.extra_frames) == \
        ("MineRLNavigate-v0", 21, 20, 23, 2)
    assert info.total_reward == sum(range(1, 21))


def test_discovery_skips_what_minerl_would_refuse(tmp_path):
    write_minerl_stream(tmp_path, "MineRLTreechop-v0", STREAM, steps=3)
    write_minerl_stream(tmp_path, "MineRLTreechop-v0", "v3_tempting_capers_shapeshifter-14_1-2", steps=3)
    write_minerl_stream(tmp_path, "MineRLTreechop-v0", "no_version_prefix", steps=3)
    write_minerl_stream(tmp_path, "MineRLTreechopVectorObf-v0", STREAM, steps=3)
    (tmp_path / "not_minerl").mkdir()
    streams, skipped = find_minerl_streams(tmp_path)
    assert [s.name for s in streams] == [STREAM]
    reasons = {e.path.split("/")[-1]: e.reason for _, e in skipped}
    assert "blacklisted" in reasons["v3_tempting_capers_shapeshifter-14_1-2"]
    assert "version prefix" in reasons["no_version_prefix"]
    assert "unsupported environment" in reasons["MineRLTreechopVectorObf-v0"]
    assert len(find_minerl_streams(tmp_path, envs=["MineRLObtainDiamond-v0"])[1]) == 1   # asked for, not there
    (tmp_path / "VERSION").write_text("2\n")
    with pytest.raises(DataError, match="VERSION: dataset version 2"):
        find_minerl_streams(tmp_path)


def corrupt(kind, stream_path):
    if kind == "missing metadata":
        (stream_path / "metadata.json").unlink()
        return "metadata.json", "missing file"
    if kind == "truncated mp4":
        data = (stream_path / "recording.mp4").read_bytes()
        (stream_path / "recording.mp4").write_bytes(data[: len(data) // 2])
        return "recording.mp4", "video"
    if kind == "npz missing key":
        arrays = dict(np.load(stream_path / "rendered.npz", allow_pickle=True))   # our own fixture file
        del arrays["action$camera"]
        np.savez_compressed(stream_path / "rendered.npz", **arrays)
        return "rendered.npz", "missing key 'action\\$camera'"
    if kind == "action length":
        arrays = dict(np.load(stream_path / "rendered.npz", allow_pickle=True))
        arrays["action$forward"] = arrays["action$forward"][:-1]
        np.savez_compressed(stream_path / "rendered.npz", **arrays)
        return "rendered.npz", "has 9 steps but 'reward' has 10"
    if kind == "frame count too small":
        metadata = json.loads((stream_path / "metadata.json").read_text())
        metadata["true_video_frame_count"] = 10   # 10 actions need 11 frames
        (stream_path / "metadata.json").write_text(json.dumps(metadata))
        return stream_path.name, "frame count too small"
    if kind == "video shorter than metadata":
        metadata = json.loads((stream_path / "metadata.json").read_text())
        metadata["true_video_frame_count"] = 40
        (stream_path / "metadata.json").write_text(json.dumps(metadata))
        return "recording.mp4", "video has only 14 frames, need 40"
    if kind == "not a zip":
        (stream_path / "rendered.npz").write_bytes(b"garbage")
        return "rendered.npz", "not a readable npz"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing metadata", "truncated mp4", "npz missing key", "action length",
                                  "frame count too small", "video shorter than metadata", "not a zip"])
def test_bad_input_names_file_and_reason(tmp_path, kind):
    written = write_minerl_stream(tmp_path, "MineRLTreechop-v0", STREAM, steps=10, extra_frames=3)
    filename, reason = corrupt(kind, written["path"])
    (stream,), _ = find_minerl_streams(tmp_path)
    with pytest.raises(DataError, match=reason) as caught:
        read_minerl_stream(stream)
    assert caught.value.path.endswith(filename)


def test_wrong_resolution_is_refused(tmp_path):
    write_minerl_stream(tmp_path, "MineRLTreechop-v0", STREAM, steps=4, size=(48, 48))
    (stream,), _ = find_minerl_streams(tmp_path)
    with pytest.raises(DataError, match="wrong resolution: frames are 48x48") as caught:
        read_minerl_stream(stream)
    assert caught.value.path.endswith("recording.mp4")
    assert len(read_minerl_stream(stream, expect_source_size=None)) == 5   # opt out explicitly


def test_unsafe_object_array_is_refused_without_running_it(tmp_path):
    import os

    written = write_minerl_stream(tmp_path, "MineRLNavigate-v0", STREAM, steps=3)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    arrays = dict(np.load(written["path"] / "rendered.npz", allow_pickle=True))
    arrays["action$place"] = np.array([Exploit()] * 3, dtype=object)
    np.savez(written["path"] / "rendered.npz", **arrays)
    (stream,), _ = find_minerl_streams(tmp_path)
    with pytest.raises(DataError, match="refusing to load a pickle that names posix.system"):
        read_minerl_stream(stream)
    assert not marker.exists()
