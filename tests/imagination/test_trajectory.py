import dataclasses
import json
import struct

import numpy as np
import pytest

from system.imagination.trajectory import (ImaginedTrajectory, TrajectoryFormatError, decode_trajectory,
                                           encode_trajectory)


def example(b=3, h=4, s=1, d=5, a=2, seed=0) -> ImaginedTrajectory:
    rng = np.random.default_rng(seed)
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    return ImaginedTrajectory(agent=f(b, h + 1, s, d), actions=rng.integers(0, 9, (b, h, a)).astype(np.int32),
                              log_probs=f(b, h), prior_log_probs=f(b, h), rewards=f(b, h + 1),
                              continues=rng.uniform(0, 1, (b, h + 1)).astype(np.float32), values=f(b, h + 1),
                              policy_version=7)


def test_round_trip_is_exact():
    traj = example()
    back = decode_trajectory(encode_trajectory(traj))
    for field in dataclasses.fields(traj):
        np.testing.assert_array_equal(getattr(back, field.name), getattr(traj, field.name))
    assert back.policy_version == 7 and back.horizon == 4 and back.batch == 3


def test_bad_arrays_are_refused_naming_the_field():
    traj = example()
    with pytest.raises(TrajectoryFormatError, match="rewards"):
        dataclasses.replace(traj, rewards=traj.rewards[:, :-1])
    with pytest.raises(TrajectoryFormatError, match="log_probs"):
        dataclasses.replace(traj, log_probs=traj.log_probs.astype(np.float64))
    bad = traj.values.copy()
    bad[0, 0] = np.nan
    with pytest.raises(TrajectoryFormatError, match="values"):
        dataclasses.replace(traj, values=bad)
    with pytest.raises(TrajectoryFormatError, match="continues"):
        dataclasses.replace(traj, continues=traj.continues + 2)
    with pytest.raises(TrajectoryFormatError, match="policy_version"):
        dataclasses.replace(traj, policy_version=-1)


def test_bad_bytes_are_refused_naming_what_is_wrong():
    data = encode_trajectory(example())
    with pytest.raises(TrajectoryFormatError, match="length"):
        decode_trajectory(data[:-1])
    with pytest.raises(TrajectoryFormatError, match="magic"):
        decode_trajectory(b"D4RC" + data[4:])
    with pytest.raises(TrajectoryFormatError, match="version"):
        decode_trajectory(data[:4] + bytes([9]) + data[5:])
    header_len = struct.unpack(">I", data[5:9])[0]
    header = json.loads(data[9:9 + header_len])
    header["batch"] = 0
    text = json.dumps(header).encode()
    with pytest.raises(TrajectoryFormatError, match="header.batch"):
        decode_trajectory(data[:5] + struct.pack(">I", len(text)) + text + data[9 + header_len:])
    with pytest.raises(TrajectoryFormatError, match="truncated"):
        decode_trajectory(b"D4")
