"""A chunk of consecutive steps of one episode, its validation, and its byte encoding (no object serialisation).

Step convention: step t holds frame t, the action that PRODUCED frame t, the reward received on arriving at
frame t, and whether frame t is terminal. The first step of an episode (step_offset 0) therefore has action -1
("no action") in every component and reward 0.

In:  `Chunk(frames (T, H, W, C) uint8, actions (T, A) int32, rewards (T,) float32, terminals (T,) bool,
           episode_id str, step_offset int, task_id int = -1, is_last bool = False,
           action_classes (A,) ints | None = None)`
Out: `encode_chunk(chunk) -> bytes` and `decode_chunk(bytes) -> Chunk`; `StepLayout.bad_records(records)` checks
     step records read back from storage (cheap: bounds, flags, finiteness; no object is built).

`action_classes` are the action space's class counts (component k holds -1 or a label in [0, n_k)); they are
part of the step layout, so a table refuses chunks of another action space and a sampler can tell foreign bytes
of the right length from real steps.

Encoded layout (schema version 2; version 1, the same without `action_classes`, still decodes):

    b"D4RC" | version u8 | header_len u32 (big endian) | header: ASCII JSON | T step records

A step record is packed (no padding): frame (H*W*C bytes) | action (A little-endian int32) | reward
(little-endian float32) | terminal (1 byte). Storing step-major means a run of steps is one contiguous byte
range, so a sampler can read exactly the steps it needs (Redis GETRANGE) instead of whole chunks.
The header names the schema version, the per-step field dtypes and shapes, and the chunk's metadata; the
decoder accepts exactly the layout this version writes and raises `ChunkFormatError` for anything else.
No object is ever deserialised: bytes become numpy arrays only through `np.frombuffer` with a dtype built
here.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAGIC = b"D4RC"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 headers have no action_classes
_PREFIX = struct.Struct(">4sBI")  # magic, version, header length
MAX_HEADER_BYTES = 4096
EPISODE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@/+=-]{1,128}")
_LAYOUT_KEY = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})x([1-9][0-9]{0,3})a([1-9][0-9]{0,5})"
                         r"(?:c([1-9][0-9]{0,9}(?:,[1-9][0-9]{0,9})*))?")


class ChunkError(ValueError):
    """A chunk whose fields have the wrong dtype, shape or values."""


class ChunkFormatError(ChunkError):
    """Bytes that are not a valid encoded chunk (truncated, foreign, other schema version)."""


@dataclass(frozen=True)
class StepLayout:
    """The per-step shapes every chunk of one table shares; it fixes the packed record dtype."""

    frame_shape: tuple[int, int, int]  # (H, W, C)
    action_dim: int  # A, number of factored action components
    action_classes: tuple[int, ...] | None = None  # (A,) class counts; None: no upper bound (older tables)

    @property
    def record_dtype(self) -> np.dtype:
        return _record_dtype(self.frame_shape, self.action_dim)

    @property
    def record_size(self) -> int:
        return self.record_dtype.itemsize

    def fields(self) -> list:
        """The header's description of a step record: [name, dtype string, per-step shape]."""
        return [["frame", "|u1", list(self.frame_shape)], ["action", "<i4", [self.action_dim]],
                ["reward", "<f4", []], ["terminal", "|u1", []]]

    def key(self) -> str:
        """A short text form that Redis compares to keep one layout per table: '64x64x3a1c17' (Crafter's
        one 17-way component), or '64x64x3a25' without bounds."""
        h, w, c = self.frame_shape
        bounds = "" if self.action_classes is None else "c" + ",".join(map(str, self.action_classes))
        return f"{h}x{w}x{c}a{self.action_dim}{bounds}"

    def shape_key(self) -> str:
        """The key without the bounds (what tables written before bounds existed hold)."""
        return StepLayout(self.frame_shape, self.action_dim).key()

    def accepts(self, chunk_layout: "StepLayout") -> bool:
        """Whether a table of this layout takes chunks of `chunk_layout`: the same, or this one has no bounds
        (a table from before bounds existed) and the shapes agree."""
        return self == chunk_layout or (self.action_classes is None and self.shape_key() == chunk_layout.shape_key())

    def describe(self) -> str:
        h, w, c = self.frame_shape
        bounds = "" if self.action_classes is None else " (bounds in the key)"
        return f"{h}x{w}x{c} frames, {self.action_dim} action components{bounds}"

    @classmethod
    def from_key(cls, text: str) -> "StepLayout":
        match = _LAYOUT_KEY.fullmatch(text)
        if not match:
            raise ChunkFormatError(f"step layout {text!r} is not of the form HxWxCaA[cN,N,...] (e.g. 64x64x3a1c17)")
        h, w, c, a = (int(g) for g in match.groups()[:4])
        classes = tuple(int(n) for n in match.group(5).split(",")) if match.group(5) else None
        if classes is not None and len(classes) != a:
            raise ChunkFormatError(f"step layout {text!r} lists {len(classes)} class counts for {a} components")
        return cls((h, w, c), a, classes)

    def bad_records(self, records: np.ndarray) -> str | None:
        """Why these step records (read back from storage) cannot be real steps, or None when they pass:
        every action component -1 or inside its bounds, terminal bytes 0 or 1, rewards finite. A few
        vectorised comparisons, no copy of the frames."""
        actions = records["action"]
        high = None if self.action_classes is None else np.asarray(self.action_classes)
        bad = actions < -1 if high is None else (actions < -1) | (actions >= high)
        if bad.any():
            step, component = (int(i) for i in np.argwhere(bad)[0])
            bound = "" if high is None else f", {high[component]}"
            return f"step {step}: action component {component} = {actions[step, component]} outside [-1{bound})"
        terminals = records["terminal"]
        if (terminals > 1).any():
            step = int(np.flatnonzero(terminals > 1)[0])
            return f"step {step}: terminal byte {terminals[step]} (0 or 1)"
        rewards = records["reward"]
        if not np.isfinite(rewards).all():
            step = int(np.flatnonzero(~np.isfinite(rewards))[0])
            return f"step {step}: reward {rewards[step]} is not finite"
        return None


@lru_cache(maxsize=32)
def _record_dtype(frame_shape: tuple[int, int, int], action_dim: int) -> np.dtype:
    return np.dtype([("frame", "u1", frame_shape), ("action", "<i4", (action_dim,)),
                     ("reward", "<f4"), ("terminal", "u1")])


@dataclass(frozen=True, eq=False)
class Chunk:
    """T consecutive steps of one episode (see the module docstring for the step convention).

    frames (T, H, W, C) uint8; actions (T, A) int32, -1 = no label; rewards (T,) float32, finite;
    terminals (T,) bool, only the last step may be terminal; episode_id short ASCII; step_offset = index of
    the first step in its episode; task_id -1 = none; is_last marks the final chunk of an episode
    (terminal or truncated); action_classes (A,) the action space's class counts, None = unbounded.
    """

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    episode_id: str
    step_offset: int
    task_id: int = -1
    is_last: bool = False
    action_classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.action_classes is not None:
            try:  # normalise lists and numpy arrays to a hashable tuple of ints, so layouts compare equal
                object.__setattr__(self, "action_classes", tuple(int(n) for n in self.action_classes))
            except (TypeError, ValueError):
                raise ChunkError(f"action_classes = {self.action_classes!r} must be a sequence of ints") from None
        validate(self)

    @property
    def length(self) -> int:
        return int(self.frames.shape[0])

    @property
    def layout(self) -> StepLayout:
        return StepLayout(tuple(int(n) for n in self.frames.shape[1:]), int(self.actions.shape[1]),
                          self.action_classes)

    @classmethod
    def from_records(cls, records: np.ndarray, episode_id: str, step_offset: int, task_id: int = -1,
                     is_last: bool = False, action_classes: tuple[int, ...] | None = None) -> "Chunk":
        """The inverse of `records()`: copies packed step records back into separate field arrays."""
        return cls(frames=records["frame"].copy(), actions=records["action"].astype(np.int32),
                   rewards=records["reward"].astype(np.float32), terminals=records["terminal"] != 0,
                   episode_id=episode_id, step_offset=step_offset, task_id=task_id, is_last=is_last,
                   action_classes=action_classes)

    def records(self) -> np.ndarray:
        """The steps as packed records, shape (T,) with the layout's record dtype."""
        out = np.empty(self.length, dtype=self.layout.record_dtype)
        self.write_records(out)
        return out

    def write_records(self, out: np.ndarray) -> None:
        out["frame"], out["action"], out["reward"], out["terminal"] = (
            self.frames, self.actions, self.rewards, self.terminals)


def validate(chunk: Chunk) -> None:
    """Raises ChunkError naming the field and the bad value; returns None for a valid chunk."""
    where = f"chunk (episode {chunk.episode_id!r}, step {chunk.step_offset!r})"
    arrays = {"frames": (chunk.frames, np.uint8, 4), "actions": (chunk.actions, np.int32, 2),
              "rewards": (chunk.rewards, np.float32, 1), "terminals": (chunk.terminals, np.bool_, 1)}
    for name, (value, dtype, ndim) in arrays.items():
        if not isinstance(value, np.ndarray):
            raise ChunkError(f"{where}: {name} must be a numpy array, got {type(value).__name__}")
        if value.dtype != dtype:
            raise ChunkError(f"{where}: {name} has dtype {value.dtype}, expected {np.dtype(dtype)}")
        if value.ndim != ndim:
            raise ChunkError(f"{where}: {name} has shape {value.shape}, expected {ndim} dimensions")
    length = chunk.frames.shape[0]
    if length < 1:
        raise ChunkError(f"{where}: frames has shape {chunk.frames.shape}: a chunk needs at least one step")
    if min(chunk.frames.shape[1:]) < 1:
        raise ChunkError(f"{where}: frames has shape {chunk.frames.shape}: H, W and C must be positive")
    if chunk.actions.shape[1] < 1:
        raise ChunkError(f"{where}: actions has shape {chunk.actions.shape}: A must be at least 1")
    for name in ("actions", "rewards", "terminals"):
        if getattr(chunk, name).shape[0] != length:
            raise ChunkError(f"{where}: {name} has shape {getattr(chunk, name).shape}, frames has {length} steps")
    if not isinstance(chunk.episode_id, str) or not EPISODE_ID_PATTERN.fullmatch(chunk.episode_id):
        raise ChunkError(f"{where}: episode_id {chunk.episode_id!r} must be 1-128 characters of "
                         "letters, digits and _.:@/+=-")
    for name, low in (("step_offset", 0), ("task_id", -1)):
        value = getattr(chunk, name)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
            raise ChunkError(f"{where}: {name} = {value!r} must be an integer >= {low}")
    if not isinstance(chunk.is_last, (bool, np.bool_)):
        raise ChunkError(f"{where}: is_last = {chunk.is_last!r} must be a bool")
    if chunk.actions.min() < -1:
        index = np.unravel_index(np.argmin(chunk.actions), chunk.actions.shape)
        raise ChunkError(f"{where}: actions[{index[0]}, {index[1]}] = {chunk.actions[index]}: "
                         "labels are >= 0, -1 = none")
    if chunk.action_classes is not None:
        classes = chunk.action_classes
        if len(classes) != chunk.actions.shape[1]:
            raise ChunkError(f"{where}: action_classes {classes} has {len(classes)} entries, actions have "
                             f"{chunk.actions.shape[1]} components")
        if min(classes) < 1:
            raise ChunkError(f"{where}: action_classes {classes}: class counts must be positive")
        over = chunk.actions >= np.asarray(classes)
        if over.any():
            step, column = (int(i) for i in np.argwhere(over)[0])
            raise ChunkError(f"{where}: actions[{step}, {column}] = {chunk.actions[step, column]}: component "
                             f"{column} has {classes[column]} classes (labels 0..{classes[column] - 1}, -1 = none)")
    if not np.isfinite(chunk.rewards).all():
        index = int(np.flatnonzero(~np.isfinite(chunk.rewards))[0])
        raise ChunkError(f"{where}: rewards[{index}] = {chunk.rewards[index]} is not finite")
    if chunk.terminals[:-1].any():
        index = int(np.flatnonzero(chunk.terminals[:-1])[0])
        raise ChunkError(f"{where}: terminals[{index}] is True before the last step: an episode ends at a "
                         "terminal, so only a chunk's last step can be one")
    if chunk.terminals[-1] and not chunk.is_last:
        raise ChunkError(f"{where}: terminals[-1] is True but is_last is False")
    if chunk.step_offset == 0 and ((chunk.actions[0] != -1).any() or chunk.rewards[0] != 0):
        raise ChunkError(f"{where}: the first step of an episode must have action -1 and reward 0 "
                         f"(got actions[0] = {chunk.actions[0].tolist()}, rewards[0] = {chunk.rewards[0]})")


def check_size(chunk: Chunk, max_bytes: int) -> None:
    """ChunkError when the chunk's step records exceed `max_bytes` (the store's max_chunk_bytes)."""
    size = chunk.length * chunk.layout.record_size
    if size > max_bytes:
        raise ChunkError(f"chunk (episode {chunk.episode_id!r}, step {chunk.step_offset}) is {size} bytes, "
                         f"over the limit max_chunk_bytes = {max_bytes}: write shorter chunks")


def encode_chunk(chunk: Chunk) -> bytearray:
    """Header plus packed step records, written straight into one buffer (the chunk is copied once)."""
    header = json.dumps({
        "episode_id": chunk.episode_id, "step_offset": int(chunk.step_offset), "task_id": int(chunk.task_id),
        "is_last": bool(chunk.is_last), "length": chunk.length, "fields": chunk.layout.fields(),
        "action_classes": None if chunk.action_classes is None else list(chunk.action_classes),
    }, separators=(",", ":")).encode("ascii")
    start = _PREFIX.size + len(header)
    out = bytearray(start + chunk.length * chunk.layout.record_size)
    _PREFIX.pack_into(out, 0, MAGIC, SCHEMA_VERSION, len(header))
    out[_PREFIX.size:start] = header
    chunk.write_records(np.frombuffer(out, dtype=chunk.layout.record_dtype, offset=start))
    return out


def payload_start(blob: bytes | bytearray) -> int:
    """Byte offset of the first step record in an encoded chunk."""
    return _PREFIX.size + _PREFIX.unpack_from(blob)[2]


_HEADER_TYPES = {"episode_id": str, "step_offset": int, "task_id": int, "is_last": bool, "length": int,
                 "fields": list}
_HEADER_TYPES_V2 = {**_HEADER_TYPES, "action_classes": (list, type(None))}


def decode_chunk(blob: bytes, where: str = "value") -> Chunk:
    """Parses bytes written by `encode_chunk`; ChunkFormatError (naming `where`) for anything else."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ChunkFormatError(f"{where}: expected bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < _PREFIX.size:
        raise ChunkFormatError(f"{where}: truncated: {len(blob)} bytes, the chunk prefix alone is {_PREFIX.size}")
    magic, version, header_len = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise ChunkFormatError(f"{where}: not a replay chunk (starts with {blob[:8]!r}, expected {MAGIC!r})")
    if version not in READABLE_VERSIONS:
        raise ChunkFormatError(f"{where}: chunk schema version {version}, this code reads {READABLE_VERSIONS}")
    if header_len > MAX_HEADER_BYTES or _PREFIX.size + header_len > len(blob):
        raise ChunkFormatError(f"{where}: truncated or corrupt header: header_len = {header_len}, "
                               f"{len(blob) - _PREFIX.size} bytes follow the prefix")
    try:
        header = json.loads(blob[_PREFIX.size:_PREFIX.size + header_len].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ChunkFormatError(f"{where}: header is not ASCII JSON ({error})") from None
    types = _HEADER_TYPES if version == 1 else _HEADER_TYPES_V2
    if not isinstance(header, dict) or set(header) != set(types):
        keys = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise ChunkFormatError(f"{where}: header keys {keys}, expected {sorted(types)}")
    for key, kind in types.items():
        if not isinstance(header[key], kind) or (kind is int and isinstance(header[key], bool)):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ChunkFormatError(f"{where}: header {key} = {header[key]!r} is not a {name}")
    classes = header.get("action_classes")
    if classes is not None and not all(isinstance(n, int) and not isinstance(n, bool) for n in classes):
        raise ChunkFormatError(f"{where}: header action_classes = {classes!r} is not a list of ints")
    layout = _layout_from_fields(header["fields"], where)
    payload = memoryview(blob)[_PREFIX.size + header_len:]
    if header["length"] < 1 or len(payload) != header["length"] * layout.record_size:
        raise ChunkFormatError(f"{where}: payload has {len(payload)} bytes, header says {header['length']} steps "
                               f"of {layout.record_size} bytes")
    records = np.frombuffer(payload, dtype=layout.record_dtype)
    try:
        return Chunk.from_records(records, header["episode_id"], header["step_offset"], header["task_id"],
                                  header["is_last"], None if classes is None else tuple(classes))
    except ChunkError as error:
        raise ChunkFormatError(f"{where}: decoded chunk is invalid: {error}") from None


def _layout_from_fields(fields: list, where: str) -> StepLayout:
    try:
        layout = StepLayout(tuple(int(n) for n in fields[0][2]), int(fields[1][2][0]))
        valid = len(layout.frame_shape) == 3 and min(layout.frame_shape) > 0 and layout.action_dim > 0
    except (TypeError, ValueError, IndexError):
        valid = False
    if not valid or fields != layout.fields():
        raise ChunkFormatError(f"{where}: header fields {fields!r} are not the version-{SCHEMA_VERSION} record "
                               "layout [frame |u1 (H,W,C), action <i4 (A,), reward <f4, terminal |u1]")
    return layout
