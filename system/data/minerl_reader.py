"""MineRL v0 dataset reader: `<root>/<Env>/<stream>/{recording.mp4, rendered.npz, metadata.json}` -> Episode.

    streams, skipped = find_minerl_streams(root, envs=("MineRLTreechop-v0",))
    info = describe_minerl_stream(streams[0])      # SourceInfo from npz + metadata, no video decoding
    episode = read_minerl_stream(streams[0])       # Episode: T+1 steps (frames (T+1, 64, 64, 3)), or DataError

Alignment, exactly as MineRL's DataPipeline (minerl/data/data_pipeline.py, v0.4.4): the npz holds T actions
and rewards (`reward` has T entries); the video holds `true_video_frame_count` (metadata) frames of which the
first `true_video_frame_count - (T+1)` come before the first state and are skipped; the next T+1 frames are the
states s0..sT, and action[t] leads from s_t to s_{t+1}. In the project's step convention step 0 is s0 with
action -1, and step t is s_t with action[t-1] and reward[t-1]. MineRL then replaces the last frame with its
predecessor (`frames[-1] = frames[-2]`); `duplicate_last_frame=True` does the same so our data matches what
MineRL users trained on. MineRL marks the last transition done, so the last step is terminal.

The npz is read without pickle (safe_npz.py). Keys are `$`-joined (`action$forward`); older files' dotted
variants (`action.forward`, `observation$equipped_items.mainhand.type`) are normalised to `$`. The 8 keys and
the camera (degrees, [pitch, yaw]) become the Minecraft action space's columns (camera as a μ-law class), the
enum actions their class index. Every problem raises DataError naming the file and the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from system.data.episode import Episode, make_episode_id
from system.data.errors import DataError, contents
from system.data.safe_npz import NpzFormatError, SafeNpz
from system.data.stats import SourceInfo
from system.data.video import count_frames, read_frames
from system.envs.action_space import NO_LABEL, minecraft_action_space
from system.envs.minecraft_actions import dicts_to_model_actions
from system.envs.minerl_spaces import MINERL_V0_SPECS, minerl_v0_spec
from system.envs.resize import ResizeMethod

ALLOWED_VERSIONS = (3, 4)                          # minerl/data/version.py
BLACKLIST = ("tempting_capers_shapeshifter-14",)   # hard-coded in DataPipeline._is_blacklisted
_VERSION_IN_NAME = re.compile(r"v([0-9]+?)_")      # assert_prefix
SOURCE_SIZE = (64, 64)                              # MineRL v0 'low' resolution; 'high' was never published


@dataclass(frozen=True)
class MineRLStream:
    env_name: str
    name: str
    path: Path

    @property
    def episode_id(self) -> str:
        return make_episode_id("minerl", self.env_name, self.name)

    @property
    def video(self) -> Path:
        return self.path / "recording.mp4"

    @property
    def npz(self) -> Path:
        return self.path / "rendered.npz"

    @property
    def metadata(self) -> Path:
        return self.path / "metadata.json"


def find_minerl_streams(root: str | Path, envs: tuple[str, ...] | list[str] = ()) \
        -> tuple[list[MineRLStream], list[tuple[str, DataError]]]:
    """Stream directories under root/<Env>/, and (group, DataError) for those that cannot be read as MineRL v0."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "MineRL data root is not a directory")
    _check_version_file(root)
    streams: list[MineRLStream] = []
    skipped: list[tuple[str, DataError]] = []
    for env_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if envs and env_dir.name not in envs:
            continue
        if env_dir.name not in MINERL_V0_SPECS:
            if "MineRL" in env_dir.name:
                skipped.append((env_dir.name, DataError(env_dir, "unsupported environment (supported: "
                                                        f"{', '.join(sorted(MINERL_V0_SPECS))})")))
            continue
        for stream_dir in sorted(p for p in env_dir.iterdir() if p.is_dir()):
            reason = _stream_name_problem(stream_dir.name)
            if reason:
                skipped.append((env_dir.name, DataError(stream_dir, reason)))
            else:
                streams.append(MineRLStream(env_dir.name, stream_dir.name, stream_dir))
    missing = sorted(set(envs) - {s.env_name for s in streams} - {g for g, _ in skipped})
    for env_name in missing:
        skipped.append((env_name, DataError(root / env_name, "no streams found for this environment")))
    if not streams and not skipped:
        raise DataError(root, layout_problem(root))
    return streams, skipped


STREAM_FILES = ("recording.mp4", "rendered.npz", "metadata.json")


def layout_problem(root: Path) -> str:
    """Why `root` holds no MineRL v0 stream: what layout was expected and what is there instead."""
    expected = (f"no MineRL v0 streams: expected {root}/<Env>/<stream>/{{{', '.join(STREAM_FILES)}}} with <Env> one "
                f"of {', '.join(sorted(MINERL_V0_SPECS))}; found ")
    if any((root / name).exists() for name in STREAM_FILES):
        return expected + (f"the files of one stream ({contents(root)}): the root is two levels too deep, pass "
                           f"{root.parent.parent}")
    if any((d / name).exists() for d in root.iterdir() if d.is_dir() for name in STREAM_FILES):
        return expected + (f"stream folders ({contents(root)}): this is one environment's folder, the root is one "
                           f"level too deep, pass {root.parent}")
    if any(root.rglob("*.jsonl")) and any(root.rglob("*.mp4")):
        return expected + f"{contents(root)}, with .mp4 and .jsonl files: VPT data? use `python -m system.data.ingest vpt`"
    return expected + contents(root)


def _check_version_file(root: Path) -> None:
    version_file = root / "VERSION"
    if not version_file.is_file():
        return
    try:
        version = int(version_file.read_text().strip())
    except ValueError:
        raise DataError(version_file, "VERSION does not hold an integer") from None
    if version not in ALLOWED_VERSIONS:
        raise DataError(version_file, f"dataset version {version} is not one MineRL 0.4.4 reads {ALLOWED_VERSIONS}")


def _stream_name_problem(name: str) -> str | None:
    if any(bad in name for bad in BLACKLIST):
        return "blacklisted by MineRL (known corrupt stream)"
    match = _VERSION_IN_NAME.search(name)
    if not match:
        return "stream name has no data version prefix v<N>_ (MineRL rejects it)"
    if int(match.group(1)) not in ALLOWED_VERSIONS:
        return f"stream data version {match.group(1)} is not in {ALLOWED_VERSIONS}"
    return None


def _load_metadata(stream: MineRLStream) -> dict:
    if not stream.metadata.is_file():
        raise DataError(stream.metadata, "missing file")
    try:
        metadata = json.loads(stream.metadata.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(stream.metadata, f"invalid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise DataError(stream.metadata, "metadata is not a JSON object")
    return metadata


def _normalised_keys(npz: SafeNpz) -> dict[str, str]:
    """Canonical `$`-joined key -> key as stored (older files use dots)."""
    return {key.replace(".", "$"): key for key in npz.keys()}


def _open_npz(stream: MineRLStream) -> SafeNpz:
    if not stream.npz.is_file():
        raise DataError(stream.npz, "missing file")
    try:
        return SafeNpz(stream.npz)
    except NpzFormatError as error:
        raise DataError(stream.npz, str(error)) from None


def _read_member(npz: SafeNpz, keys: dict[str, str], canonical: str, path: Path) -> np.ndarray:
    if canonical not in keys:
        raise DataError(path, f"npz is missing key {canonical!r}")
    try:
        return npz[keys[canonical]]
    except NpzFormatError as error:
        raise DataError(path, str(error)) from None


def _read_rewards(npz: SafeNpz, keys: dict[str, str], path: Path) -> np.ndarray:
    reward = _read_member(npz, keys, "reward", path)
    if reward.ndim != 1 or not np.issubdtype(reward.dtype, np.number):
        raise DataError(path, f"'reward' must be a 1-D numeric array, got {reward.dtype} {reward.shape}")
    if len(reward) == 0:
        raise DataError(path, "'reward' is empty: the stream has no steps")
    if not np.all(np.isfinite(reward)):
        raise DataError(path, "'reward' has non-finite values")
    return reward.astype(np.float32)


def _true_frame_count(stream: MineRLStream, metadata: dict) -> int:
    count = metadata.get("true_video_frame_count")
    if count is None:   # not in every release; count by decoding instead
        return count_frames(stream.video)
    if not isinstance(count, int) or count < 0:
        raise DataError(stream.metadata, f"true_video_frame_count must be a non-negative integer, got {count!r}")
    return count


def describe_minerl_stream(stream: MineRLStream) -> SourceInfo:
    """Steps, actions, video frames and total reward from the npz and metadata only (no video decoding)."""
    metadata = _load_metadata(stream)
    with _open_npz(stream) as npz:
        rewards = _read_rewards(npz, _normalised_keys(npz), stream.npz)
    if not stream.video.is_file():
        raise DataError(stream.video, "missing file")
    frames = metadata.get("true_video_frame_count", 0)
    return SourceInfo(stream.env_name, stream.name, steps=len(rewards) + 1, actions=len(rewards),
                      video_frames=frames if isinstance(frames, int) else 0, total_reward=float(rewards.sum()))


def read_minerl_stream(stream: MineRLStream, size: tuple[int, int] = (64, 64), resize: ResizeMethod = "area",
                       duplicate_last_frame: bool = True,
                       expect_source_size: tuple[int, int] | None = SOURCE_SIZE) -> Episode:
    """One stream as an Episode of T+1 steps (see the module docstring for the alignment)."""
    spec = minerl_v0_spec(stream.env_name)
    space = minecraft_action_space(stream.env_name)
    metadata = _load_metadata(stream)
    if not stream.video.is_file():
        raise DataError(stream.video, "missing file")
    with _open_npz(stream) as npz:
        keys = _normalised_keys(npz)
        rewards = _read_rewards(npz, keys, stream.npz)
        steps = len(rewards)
        raw_actions = {}
        for name in (*spec.keys, "camera", *spec.enums):
            value = _read_member(npz, keys, f"action${name}", stream.npz)
            if len(value) != steps:
                raise DataError(stream.npz, f"'action${name}' has {len(value)} steps but 'reward' has {steps}")
            raw_actions[name] = value
        dotted = any("." in key for key in npz.keys())
    try:
        actions = dicts_to_model_actions(raw_actions, space)
    except ValueError as error:
        raise DataError(stream.npz, str(error)) from None

    true_frames = _true_frame_count(stream, metadata)
    skip = true_frames - (steps + 1)
    if skip < 0:
        raise DataError(stream.path, f"frame count too small: true_video_frame_count is {true_frames}, "
                                     f"but {steps} actions need {steps + 1} frames")
    frames = read_frames(stream.video, start=skip, count=steps + 1, size=size, method=resize,
                         expect_size=expect_source_size)
    if duplicate_last_frame:
        frames[-1] = frames[-2]

    all_actions = np.concatenate([np.full((1, len(space)), NO_LABEL, np.int32), actions])
    all_rewards = np.concatenate([np.zeros(1, np.float32), rewards])
    terminals = np.zeros(steps + 1, bool)
    terminals[-1] = True
    return Episode(stream.episode_id, frames, all_actions, all_rewards, terminals, metadata={
        "source": "minerl-v0", "env": stream.env_name, "stream": stream.name, "action_space": space.name,
        "fps": 20, "video_frames": true_frames, "leading_frames_skipped": skip, "npz_keys": "dotted" if dotted else "$",
        "success": metadata.get("success"), "total_reward": float(rewards.sum()),
        "duplicate_last_frame": duplicate_last_frame,
    })
