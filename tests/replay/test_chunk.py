"""Chunk validation and the byte codec: exact round trips, and clear errors for anything malformed."""

import json
import re
import os
import pickle
import struct

import numpy as np
import pytest

from system.replay.chunk import Chunk, ChunkError, ChunkFormatError, StepLayout, check_size, decode_chunk, encode_chunk
from tests.replay.helpers import synthetic_chunk


def random_chunk(rng, length=5, shape=(6, 7, 3), action_dim=4, step_offset=3, **kwargs) -> Chunk:
    return Chunk(frames=rng.integers(0, 256, (length, *shape), dtype=np.uint8),
                 actions=rng.integers(-1, 50, (length, action_dim), dtype=np.int32),
                 rewards=rng.normal(size=length).astype(np.float32),
                 terminals=np.zeros(length, bool), episode_id="run-3/env.7:ep@12", step_offset=step_offset,
                 **kwargs)


def assert_same(a: Chunk, b: Chunk) -> None:
    for name in ("frames", "actions", "rewards", "terminals"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    assert (a.episode_id, a.step_offset, a.task_id, a.is_last) == (b.episode_id, b.step_offset, b.task_id, b.is_last)


def test_round_trip_every_field_and_dtype():
    rng = np.random.default_rng(0)
    extreme = random_chunk(rng, length=3, task_id=2**31 - 1)
    extreme.rewards[:] = [np.float32(-3.4e38), np.float32(1e-45), 7.25]
    extreme.frames[0] = 255
    extreme.actions[1] = [2**31 - 1, -1, 0, 5]
    for chunk in [random_chunk(rng), random_chunk(rng, length=1, shape=(1, 1, 1), action_dim=1, task_id=9),
                  synthetic_chunk("ep", 0, 4, terminal=True), extreme]:
        decoded = decode_chunk(encode_chunk(chunk))
        assert_same(chunk, decoded)
        assert decoded.frames.flags.writeable, "decoded arrays are the caller's own copies"


def test_records_are_step_major_so_a_step_range_is_one_byte_range():
    chunk = random_chunk(np.random.default_rng(1), length=6)
    blob = encode_chunk(chunk)
    layout = chunk.layout
    start = len(blob) - 6 * layout.record_size
    steps_2_to_4 = np.frombuffer(blob[start + 2 * layout.record_size:start + 4 * layout.record_size],
                                 layout.record_dtype)
    assert np.array_equal(steps_2_to_4["frame"], chunk.frames[2:4])
    assert np.array_equal(steps_2_to_4["reward"], chunk.rewards[2:4])
    assert layout.record_size == 6 * 7 * 3 + 4 * 4 + 4 + 1
    assert StepLayout.from_key(layout.key()) == layout


@pytest.mark.parametrize("field, value, message", [
    ("frames", np.zeros((5, 6, 7, 3), np.float32), "frames has dtype float32, expected uint8"),
    ("frames", np.zeros((5, 6, 7), np.uint8), r"frames has shape \(5, 6, 7\)"),
    ("actions", np.zeros((5, 4), np.int64), "actions has dtype int64, expected int32"),
    ("actions", np.zeros(5, np.int32), r"actions has shape \(5,\)"),
    ("actions", np.zeros((4, 4), np.int32), r"actions has shape \(4, 4\), frames has 5 steps"),
    ("actions", np.full((5, 4), -2, np.int32), r"actions\[0, 0\] = -2"),
    ("rewards", np.zeros(5, np.float64), "rewards has dtype float64"),
    ("rewards", np.array([0, 0, np.nan, 0, 0], np.float32), r"rewards\[2\] = nan is not finite"),
    ("terminals", np.zeros(5, np.uint8), "terminals has dtype uint8, expected bool"),
    ("terminals", np.array([0, 1, 0, 0, 0], bool), r"terminals\[1\] is True before the last step"),
    ("terminals", np.array([0, 0, 0, 0, 1], bool), "is_last is False"),
    ("episode_id", "has space", "episode_id 'has space'"),
    ("episode_id", "x" * 129, "episode_id"),
    ("step_offset", -1, "step_offset = -1"),
    ("step_offset", 1.0, "step_offset = 1.0"),
    ("task_id", -2, "task_id = -2"),
    ("is_last", 1, "is_last = 1 must be a bool"),
])
def test_invalid_fields_are_named(field, value, message):
    chunk = random_chunk(np.random.default_rng(2))
    fields = {name: getattr(chunk, name) for name in chunk.__dataclass_fields__}
    fields[field] = value
    with pytest.raises(ChunkError, match=message):
        Chunk(**fields)


def test_first_step_of_an_episode_has_no_action_and_no_reward():
    chunk = random_chunk(np.random.default_rng(3), step_offset=1)
    fields = {name: getattr(chunk, name) for name in chunk.__dataclass_fields__}
    fields["step_offset"] = 0
    with pytest.raises(ChunkError, match="first step of an episode must have action -1 and reward 0"):
        Chunk(**fields)
    fields["actions"] = fields["actions"].copy()
    fields["actions"][0] = -1
    fields["rewards"] = fields["rewards"].copy()
    fields["rewards"][0] = 0
    assert Chunk(**fields).step_offset == 0


def test_oversized_chunks_are_refused():
    chunk = random_chunk(np.random.default_rng(4))
    check_size(chunk, max_bytes=5 * chunk.layout.record_size)
    with pytest.raises(ChunkError, match="over the limit max_chunk_bytes = 100"):
        check_size(chunk, max_bytes=100)


def _reencode(blob: bytes, header_change) -> bytes:
    header_len = struct.unpack(">I", blob[5:9])[0]
    header = json.loads(blob[9:9 + header_len])
    header_change(header)
    new = json.dumps(header).encode()
    return blob[:5] + struct.pack(">I", len(new)) + new + blob[9 + header_len:]


def test_malformed_bytes_give_clear_errors():
    blob = encode_chunk(random_chunk(np.random.default_rng(5)))
    cases = {
        "truncated: 3 bytes": blob[:3],
        "truncated or corrupt header": blob[:20],
        "not a replay chunk": b"XXXX" + blob[4:],
        "schema version 3": blob[:4] + b"\x03" + blob[5:],
        "payload has": blob[:-1],
        "header keys": _reencode(blob, lambda h: h.pop("task_id")),
        "header step_offset = '3' is not a int": _reencode(blob, lambda h: h.update(step_offset="3")),
        "header fields": _reencode(blob, lambda h: h["fields"][1].__setitem__(1, "<f8")),
        "decoded chunk is invalid": _reencode(blob, lambda h: h.update(episode_id="bad id")),
        "not ASCII JSON": blob[:9] + b"\xff" + blob[10:],
    }
    for message, bad in cases.items():
        with pytest.raises(ChunkFormatError, match=message):
            decode_chunk(bad, where="d4:{real}:chunk:7")
    with pytest.raises(ChunkFormatError, match=r"d4:\{real\}:chunk:7"):
        decode_chunk(b"", where="d4:{real}:chunk:7")


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_pickle_payload_is_rejected_and_never_executed(tmp_path):
    marker = tmp_path / "executed"
    payload = pickle.dumps(_Exploit(marker))
    with pytest.raises(ChunkFormatError, match="not a replay chunk"):
        decode_chunk(payload)
    assert not marker.exists()


def bounded_chunk(rng, classes=(2, 5, 121), length=6, step_offset=3) -> Chunk:
    actions = np.stack([rng.integers(-1, n, length) for n in classes], 1).astype(np.int32)
    return Chunk(frames=rng.integers(0, 256, (length, 4, 4, 3), dtype=np.uint8), actions=actions,
                 rewards=rng.normal(size=length).astype(np.float32), terminals=np.zeros(length, bool),
                 episode_id="ep", step_offset=step_offset, action_classes=classes)


def test_action_bounds_travel_with_the_chunk_and_its_layout():
    chunk = bounded_chunk(np.random.default_rng(6))
    decoded = decode_chunk(encode_chunk(chunk))
    assert_same(chunk, decoded)
    assert decoded.action_classes == (2, 5, 121) and decoded.layout == chunk.layout
    assert chunk.layout.key() == "4x4x3a3c2,5,121" and StepLayout.from_key(chunk.layout.key()) == chunk.layout
    unbounded = StepLayout((4, 4, 3), 3)
    assert unbounded.accepts(chunk.layout), "a table written before bounds existed takes bounded chunks"
    assert not chunk.layout.accepts(unbounded) and not chunk.layout.accepts(StepLayout((4, 4, 3), 3, (2, 5, 120)))


@pytest.mark.parametrize("classes, message", [
    ((2, 5, 120), r"actions\[\d, 2\] = 120: component 2 has 120 classes"),
    ((2, 5), r"action_classes \(2, 5\) has 2 entries, actions have 3 components"),
    ((2, 0, 121), r"action_classes .* must be positive"),
])
def test_actions_outside_their_bounds_are_refused(classes, message):
    chunk = bounded_chunk(np.random.default_rng(7))
    chunk.actions[2, 2] = 120
    fields = {name: getattr(chunk, name) for name in chunk.__dataclass_fields__}
    fields["action_classes"] = classes
    with pytest.raises(ChunkError, match=message):
        Chunk(**fields)


def test_version_1_chunks_without_bounds_still_decode():
    chunk = random_chunk(np.random.default_rng(8))
    blob = _reencode(encode_chunk(chunk), lambda h: h.pop("action_classes"))
    old = blob[:4] + b"\x01" + blob[5:]
    decoded = decode_chunk(old)
    assert_same(chunk, decoded)
    assert decoded.action_classes is None
    with pytest.raises(ChunkFormatError, match="header keys"):
        decode_chunk(blob)  # version 2 requires the key


def test_step_records_are_checked_cheaply_against_the_layout():
    chunk = bounded_chunk(np.random.default_rng(9))
    layout = chunk.layout
    assert layout.bad_records(chunk.records()) is None
    corruptions = {
        "action": (lambda r: r["action"].__setitem__((3, 1), 5), r"step 3: action component 1 = 5 outside \[-1, 5\)"),
        "low": (lambda r: r["action"].__setitem__((0, 0), -2), r"step 0: action component 0 = -2 outside"),
        "terminal": (lambda r: r["terminal"].__setitem__(4, 7), "step 4: terminal byte 7"),
        "reward": (lambda r: r["reward"].__setitem__(2, np.inf), "step 2: reward inf"),
    }
    for name, (corrupt, message) in corruptions.items():
        records = chunk.records()
        corrupt(records)
        reason = layout.bad_records(records)
        assert reason is not None and re.search(message, reason), (name, reason)
    records = chunk.records()
    records["action"][1, 2] = 5000
    assert StepLayout((4, 4, 3), 3).bad_records(records) is None, "without bounds only -1 is the floor"
    records["action"][1, 2] = -7
    assert StepLayout((4, 4, 3), 3).bad_records(records) is not None
