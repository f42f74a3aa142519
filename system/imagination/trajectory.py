"""Imagined trajectories: what phase 3 produces and trains on, and their byte encoding (no object serialisation).

    traj = ImaginedTrajectory(agent, actions, log_probs, prior_log_probs, rewards, continues, values,
                              policy_version)
    data = encode_trajectory(traj);  traj = decode_trajectory(data)      # raises TrajectoryFormatError

Fields (numpy arrays, B rollouts of horizon H; frame 0 is the last real context frame):
    agent            (B, H + 1, S_g, D) float32  agent features h_0 .. h_H
    actions          (B, H, A) int32             action sampled on h_t (t < H); it leads to frame t + 1
    log_probs        (B, H) float32              ln pi_acting(actions[:, t] | h_t), the policy that acted
    prior_log_probs  (B, H) float32              ln pi_prior(actions[:, t] | h_t), the frozen phase-2 policy
    rewards          (B, H + 1) float32          reward head on h_t: the reward of arriving at frame t
    continues        (B, H + 1) float32          continuation head on h_t: P(frame t is not terminal)
    values           (B, H + 1) float32          slow value head on h_t
    policy_version   int >= 0                    the policy update count that acted

Encoded layout (version 1): b"D4IT" | version u8 | header_len u32 (big endian) | header: ASCII JSON
{"version", "batch", "horizon", "agent_tokens", "dim", "action_dim", "policy_version"} | the fields above in
that order, little-endian, C order. The decoder accepts exactly that (exact length, the header's keys and
positive sizes, finite floats, actions >= 0) and names the field that is wrong.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"D4IT"
VERSION = 1
_PREFIX = struct.Struct(">4sBI")
MAX_HEADER_BYTES = 1024
HEADER_KEYS = ("version", "batch", "horizon", "agent_tokens", "dim", "action_dim", "policy_version")


class TrajectoryFormatError(ValueError):
    """Bytes or arrays that are not a valid imagined trajectory; the message names the field."""


@dataclass(frozen=True)
class ImaginedTrajectory:
    agent: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    prior_log_probs: np.ndarray
    rewards: np.ndarray
    continues: np.ndarray
    values: np.ndarray
    policy_version: int

    def __post_init__(self) -> None:
        check_trajectory(self)

    @property
    def batch(self) -> int:
        return self.agent.shape[0]

    @property
    def horizon(self) -> int:
        return self.actions.shape[1]


def _field_specs(b: int, h: int, s: int, d: int, a: int) -> list[tuple[str, str, tuple[int, ...]]]:
    return [("agent", "<f4", (b, h + 1, s, d)), ("actions", "<i4", (b, h, a)), ("log_probs", "<f4", (b, h)),
            ("prior_log_probs", "<f4", (b, h)), ("rewards", "<f4", (b, h + 1)), ("continues", "<f4", (b, h + 1)),
            ("values", "<f4", (b, h + 1))]


def check_trajectory(traj: ImaginedTrajectory) -> None:
    if not isinstance(traj.agent, np.ndarray) or traj.agent.ndim != 4:
        raise TrajectoryFormatError(f"agent: expected a (B, H + 1, S_g, D) array, got "
                                    f"{getattr(traj.agent, 'shape', type(traj.agent).__name__)}")
    if not isinstance(traj.actions, np.ndarray) or traj.actions.ndim != 3:
        raise TrajectoryFormatError("actions: expected a (B, H, A) array")
    b, h1, s, d = traj.agent.shape
    a = traj.actions.shape[2]
    for name, dtype, shape in _field_specs(b, h1 - 1, s, d, a):
        value = getattr(traj, name)
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != np.dtype(dtype):
            raise TrajectoryFormatError(f"{name}: expected {np.dtype(dtype)} {shape}, got "
                                        f"{getattr(value, 'dtype', type(value).__name__)} "
                                        f"{getattr(value, 'shape', '')}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise TrajectoryFormatError(f"{name}: holds non-finite values")
    if (traj.actions < 0).any():
        raise TrajectoryFormatError("actions: imagined actions are sampled, never -1 / negative")
    if ((traj.continues < 0) | (traj.continues > 1)).any():
        raise TrajectoryFormatError("continues: probabilities must lie in [0, 1]")
    if isinstance(traj.policy_version, bool) or not isinstance(traj.policy_version, (int, np.integer)) \
            or traj.policy_version < 0:
        raise TrajectoryFormatError(f"policy_version: expected an int >= 0, got {traj.policy_version!r}")


def encode_trajectory(traj: ImaginedTrajectory) -> bytes:
    check_trajectory(traj)
    b, h1, s, d = traj.agent.shape
    header = {"version": VERSION, "batch": b, "horizon": h1 - 1, "agent_tokens": s, "dim": d,
              "action_dim": traj.actions.shape[2], "policy_version": int(traj.policy_version)}
    text = json.dumps(header, sort_keys=True).encode("ascii")
    parts = [_PREFIX.pack(MAGIC, VERSION, len(text)), text]
    for name, dtype, _ in _field_specs(b, h1 - 1, s, d, traj.actions.shape[2]):
        parts.append(np.ascontiguousarray(getattr(traj, name), dtype=dtype).tobytes())
    return b"".join(parts)


def decode_trajectory(data: bytes) -> ImaginedTrajectory:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TrajectoryFormatError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _PREFIX.size:
        raise TrajectoryFormatError(f"truncated: {len(data)} bytes, shorter than the {_PREFIX.size}-byte prefix")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise TrajectoryFormatError(f"magic: expected {MAGIC!r}, got {magic!r} (not an imagined trajectory)")
    if version != VERSION:
        raise TrajectoryFormatError(f"version: expected {VERSION}, got {version}")
    if header_len > MAX_HEADER_BYTES or _PREFIX.size + header_len > len(data):
        raise TrajectoryFormatError(f"header: length {header_len} does not fit the {len(data)} bytes")
    try:
        header = json.loads(data[_PREFIX.size:_PREFIX.size + header_len].decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TrajectoryFormatError(f"header: not ASCII JSON ({error})") from None
    if not isinstance(header, dict) or sorted(header) != sorted(HEADER_KEYS):
        raise TrajectoryFormatError(f"header: expected keys {list(HEADER_KEYS)}, got "
                                    f"{sorted(header) if isinstance(header, dict) else type(header).__name__}")
    for key in HEADER_KEYS:
        value = header[key]
        low = 0 if key == "policy_version" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low or value > 2 ** 31:
            raise TrajectoryFormatError(f"header.{key}: expected an int >= {low}, got {value!r}")
    if header["version"] != version:
        raise TrajectoryFormatError(f"header.version: {header['version']} differs from the prefix's {version}")
    specs = _field_specs(header["batch"], header["horizon"], header["agent_tokens"], header["dim"],
                         header["action_dim"])
    offset = _PREFIX.size + header_len
    expected = offset + sum(np.dtype(dt).itemsize * int(np.prod(shape)) for _, dt, shape in specs)
    if len(data) != expected:
        raise TrajectoryFormatError(f"length: the header describes {expected} bytes, got {len(data)}")
    arrays = {}
    for name, dtype, shape in specs:
        count = int(np.prod(shape))
        arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape).astype(
            np.dtype(dtype).newbyteorder("="))
        offset += count * np.dtype(dtype).itemsize
    return ImaginedTrajectory(**arrays, policy_version=header["policy_version"])
