"""VPT contractor data reader: `<name>.mp4` + `<name>.jsonl` segments -> Episode in the Minecraft action space.

    segments, skipped = find_vpt_segments(root)            # pairs by relative path stem, recursively
    info = describe_vpt_segment(segments[0])               # SourceInfo from the jsonl and the mp4 header
    episode = read_vpt_segment(segments[0], size=(64, 64)) # Episode, or DataError naming the file

Line i of the jsonl is the action taken while frame i was on screen (openai/Video-Pre-Training data_loader.py
pairs them as (frame_i, action_i)). Converting each line as VPT's `json_action_to_env_action` does:
- keys via the recorder's key names (w -> forward, ..., 1-9 -> hotbar.N, escape -> ESC); mouse buttons
  0/1/2 -> attack/use/pickItem; camera = [dy, dx] * 360/2400 degrees ([pitch, yaw]); a component beyond
  ±180° is zeroed (VPT's stated intent; its code applies this only when the mouse did not move);
- a step with no mapped key, no mouse movement and no button is a null action;
then the data_loader's fixes: an attack button held from the first frame is ignored until it is pressed anew
("stuck attack"); a change of the `hotbar` field (scroll wheel) presses `hotbar.N`; a cursor is drawn on frames
while a GUI is open (the recorder does not capture it). As VPT trains, (frame, action) pairs with null actions
are dropped (`drop_null_actions`), which leaves the kept frames k_0 < k_1 < ...

In the project's step convention step j shows frame k_j and carries action k_{j-1}, the action after which
frame k_j is the next kept frame; step 0 has action -1. Video frames past the last jsonl line have no action and
are dropped, as VPT's loader drops them; `metadata["trailing_frames"]` counts them for the ingest statistics. There is no reward (0) and no terminal: a segment is
a cut of a longer session. Frames are resized to `size` (height, width); VPT itself uses 128x128 INTER_LINEAR.
Not reproduced: VPT's GUI mouse scaler table for recorder versions 5.7-6.9 (defined but unused in its loader),
and its exact cursor bitmap (a drawn stand-in arrow is used, see `_cursor_sprite`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from system.data.episode import Episode, make_episode_id
from system.data.errors import DataError, contents
from system.data.stats import SourceInfo
from system.data.video import iter_frames, probe_video
from system.envs.action_space import NO_LABEL, minecraft_action_space
from system.envs.minecraft_actions import dicts_to_model_actions
from system.envs.resize import ResizeMethod, resize_frames

SOURCE_SIZE = (360, 640)          # (height, width) of the published contractor videos
ORIGINAL_HEIGHT = 720             # mouse x/y are recorded in 720p window coordinates
CAMERA_SCALER = 360.0 / 2400.0    # mouse counts -> degrees, from MineRL's Java code (VPT)

# Recorder key names -> MineRL 1.0 key actions (VPT run_inverse_dynamics_model.py KEYBOARD_BUTTON_MAPPING).
KEY_ACTIONS = {
    "key.keyboard.escape": "ESC", "key.keyboard.s": "back", "key.keyboard.q": "drop", "key.keyboard.w": "forward",
    **{f"key.keyboard.{n}": f"hotbar.{n}" for n in range(1, 10)},
    "key.keyboard.e": "inventory", "key.keyboard.space": "jump", "key.keyboard.a": "left",
    "key.keyboard.d": "right", "key.keyboard.left.shift": "sneak", "key.keyboard.left.control": "sprint",
    "key.keyboard.f": "swapHands",
}
MOUSE_BUTTON_ACTIONS = {0: "attack", 1: "use", 2: "pickItem"}


@dataclass(frozen=True)
class VptOptions:
    drop_null_actions: bool = True    # VPT trains only on non-null steps
    fix_stuck_attack: bool = True
    hotbar_from_state: bool = True    # scroll-wheel hotbar changes become hotbar.N presses
    draw_cursor: bool = True          # draw the mouse cursor while a GUI is open


@dataclass(frozen=True)
class VptSegment:
    name: str         # path relative to the dataset root, without suffix
    video: Path
    actions: Path

    @property
    def episode_id(self) -> str:
        return make_episode_id("vpt", self.name)


@dataclass
class VptActions:
    """Per-line conversion result: `actions` (N, A) model actions for every jsonl line, plus what reading needs."""
    actions: np.ndarray
    null: np.ndarray          # (N,) bool
    gui_open: np.ndarray      # (N,) bool
    cursor_xy: np.ndarray     # (N, 2) mouse x, y in 720p window coordinates

    def kept(self, options: VptOptions) -> np.ndarray:
        return np.flatnonzero(~self.null) if options.drop_null_actions else np.arange(len(self.null))


def find_vpt_segments(root: str | Path) -> tuple[list[VptSegment], list[tuple[str, DataError]]]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "VPT data root is not a directory")
    videos = {p.relative_to(root).with_suffix("").as_posix(): p for p in root.rglob("*.mp4")}
    jsonls = {p.relative_to(root).with_suffix("").as_posix(): p for p in root.rglob("*.jsonl")}
    segments = [VptSegment(name, videos[name], jsonls[name]) for name in sorted(videos.keys() & jsonls.keys())]
    if not segments:
        raise DataError(root, layout_problem(root, videos, jsonls))
    skipped = [("vpt", DataError(videos[n], "missing .jsonl actions file"))
               for n in sorted(videos.keys() - jsonls.keys())]
    skipped += [("vpt", DataError(jsonls[n], "missing .mp4 video")) for n in sorted(jsonls.keys() - videos.keys())]
    return segments, skipped


def layout_problem(root: Path, videos: dict[str, Path], jsonls: dict[str, Path]) -> str:
    """Why `root` holds no VPT segment: what layout was expected and what is there instead."""
    expected = f"no VPT segments: expected <name>.mp4 with <name>.jsonl beside it, anywhere under {root}; found "
    if any(root.rglob("rendered.npz")):
        return expected + f"{contents(root)}, with MineRL v0 streams (rendered.npz): use `python -m system.data.ingest minerl`"
    if videos or jsonls:
        found = []
        if videos:
            found.append(f"{len(videos)} .mp4 without a .jsonl beside {'it' if len(videos) == 1 else 'them'} "
                         f"(e.g. {sorted(videos)[0]}.mp4)")
        if jsonls:
            found.append(f"{len(jsonls)} .jsonl without an .mp4 (e.g. {sorted(jsonls)[0]}.jsonl)")
        return expected + " and ".join(found)
    return expected + contents(root) + ("" if not any(root.iterdir()) else ", none of them .mp4 or .jsonl")


def _field(record: dict, dotted: str, path: Path, line: int):
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(path, f"line {line}: missing field '{dotted}'")
        value = value[part]
    return value


def _load_lines(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(path, "missing file")
    lines = path.read_text(errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, text in enumerate(lines, start=1):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(path, f"line {number}: invalid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(path, f"line {number}: expected a JSON object")
        records.append(record)
    if not records:
        raise DataError(path, "no action lines")
    return records


def parse_vpt_actions(path: str | Path, options: VptOptions = VptOptions()) -> VptActions:
    """Converts every jsonl line to the Minecraft action space (see the module docstring for the rules)."""
    path = Path(path)
    records = _load_lines(path)
    converter = _LineConverter(len(records), options)
    for i, record in enumerate(records):
        try:
            converter.convert(i, record, path)
        except (TypeError, ValueError, AttributeError) as error:   # a field of the wrong type
            raise DataError(path, f"line {i + 1}: {error}") from None
    return converter.result()


class _LineConverter:
    """Fills the per-line arrays, carrying the loader's state across lines (stuck attack, last hotbar slot)."""

    def __init__(self, lines: int, options: VptOptions):
        self.options = options
        self.space = minecraft_action_space()
        self.keys = {name: np.zeros(lines, np.int64) for name in self.space.names if name != "camera"}
        self.camera = np.zeros((lines, 2), np.float64)
        self.null = np.ones(lines, bool)
        self.gui_open = np.zeros(lines, bool)
        self.cursor = np.zeros((lines, 2), np.float64)
        self.attack_stuck, self.last_hotbar = False, 0

    def convert(self, i: int, record: dict, path: Path) -> None:
        line = i + 1
        pressed = _field(record, "keyboard.keys", path, line)
        buttons = list(_field(record, "mouse.buttons", path, line))
        dx, dy = float(_field(record, "mouse.dx", path, line)), float(_field(record, "mouse.dy", path, line))
        if not (np.isfinite(dx) and np.isfinite(dy)):
            raise ValueError(f"mouse dx/dy are not finite ({dx}, {dy})")
        new_buttons = record["mouse"].get("newButtons", [])
        if self.options.fix_stuck_attack:
            if i == 0:
                self.attack_stuck = new_buttons == [0]
            elif self.attack_stuck and 0 in new_buttons:
                self.attack_stuck = False
            if self.attack_stuck:
                buttons = [b for b in buttons if b != 0]
        for key in pressed:
            if key in KEY_ACTIONS:
                self.keys[KEY_ACTIONS[key]][i] = 1
                self.null[i] = False
        for button, action in MOUSE_BUTTON_ACTIONS.items():
            if button in buttons:
                self.keys[action][i] = 1
                self.null[i] = False
        if dx != 0 or dy != 0:
            self.null[i] = False
        pitch_yaw = np.array([dy, dx]) * CAMERA_SCALER
        self.camera[i] = np.where(np.abs(pitch_yaw) > 180, 0.0, pitch_yaw)
        hotbar = record.get("hotbar")
        if self.options.hotbar_from_state and isinstance(hotbar, int):
            # Applied after the null test, as VPT does: a scroll alone stays a null action.
            if hotbar != self.last_hotbar and 0 <= hotbar <= 8:
                self.keys[f"hotbar.{hotbar + 1}"][i] = 1
            self.last_hotbar = hotbar
        self.gui_open[i] = bool(record.get("isGuiOpen", False))
        self.cursor[i] = (float(record["mouse"].get("x", 0.0)), float(record["mouse"].get("y", 0.0)))

    def result(self) -> VptActions:
        actions = dicts_to_model_actions({**self.keys, "camera": self.camera}, self.space)
        return VptActions(actions, self.null, self.gui_open, self.cursor)


def _cursor_sprite() -> tuple[np.ndarray, np.ndarray]:
    """A 16x16 white arrow with a black outline and its alpha, standing in for VPT's cursor image."""
    rows, cols = np.mgrid[0:16, 0:16]
    head = (cols <= rows * 0.7) & (rows <= 11)
    tail = (rows >= 8) & (rows <= 15) & (cols >= rows * 0.5 - 1) & (cols <= rows * 0.5 + 1)
    inside = head | tail
    padded = np.pad(inside, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    rgb = np.where((inside & interior)[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    return rgb, inside.astype(np.float32)[..., None]


_CURSOR_RGB, _CURSOR_ALPHA = _cursor_sprite()


def draw_cursor(frame: np.ndarray, x: float, y: float) -> None:
    """Alpha-blends the cursor into `frame` in place at window position (x, y) scaled from 720p."""
    scale = frame.shape[0] / ORIGINAL_HEIGHT
    left, top = int(x * scale), int(y * scale)
    height = max(0, min(frame.shape[0] - top, 16))
    width = max(0, min(frame.shape[1] - left, 16))
    if height == 0 or width == 0 or left < 0 or top < 0:
        return
    alpha = _CURSOR_ALPHA[:height, :width]
    region = frame[top:top + height, left:left + width].astype(np.float32)
    frame[top:top + height, left:left + width] = (region * (1 - alpha) + _CURSOR_RGB[:height, :width] * alpha
                                                  ).astype(np.uint8)


def describe_vpt_segment(segment: VptSegment, options: VptOptions = VptOptions()) -> SourceInfo:
    parsed = parse_vpt_actions(segment.actions, options)
    kept = parsed.kept(options)
    frames = probe_video(segment.video).declared_frames
    return SourceInfo("vpt", segment.name, steps=len(kept), actions=max(len(kept) - 1, 0), video_frames=frames,
                      trailing_frames=max(frames - len(parsed.actions), 0))


def read_vpt_segment(segment: VptSegment, size: tuple[int, int] = (64, 64), resize: ResizeMethod = "area",
                     options: VptOptions = VptOptions(),
                     expect_source_size: tuple[int, int] | None = SOURCE_SIZE) -> Episode:
    parsed = parse_vpt_actions(segment.actions, options)
    kept = parsed.kept(options)
    if len(kept) == 0:
        raise DataError(segment.actions, "every action is null: nothing to keep")
    lines = len(parsed.actions)
    keep = np.zeros(lines, bool)
    keep[kept] = True
    batches, pending, decoded = [], [], 0
    for index, frame in iter_frames(segment.video):
        if index == 0 and expect_source_size is not None and frame.shape[:2] != tuple(expect_source_size):
            raise DataError(segment.video, f"wrong resolution: frames are {frame.shape[1]}x{frame.shape[0]} (WxH), "
                                           f"expected {expect_source_size[1]}x{expect_source_size[0]}")
        decoded = index + 1
        if index >= lines:
            continue   # a trailing frame without an action line: dropped, as VPT does, but counted
        if not keep[index]:
            continue
        if options.draw_cursor and parsed.gui_open[index]:
            draw_cursor(frame, *parsed.cursor_xy[index])
        pending.append(frame)
        if len(pending) == 256:   # resize as we go: 5 minutes of 640x360 would be 4 GB
            batches.append(resize_frames(np.stack(pending), size, resize))
            pending = []
    if decoded < lines:
        raise DataError(segment.video, f"frame count too small: video has {decoded} frames, "
                                       f"{segment.actions.name} has {lines} action lines")
    if pending:
        batches.append(resize_frames(np.stack(pending), size, resize))
    frames = np.concatenate(batches)
    actions = np.concatenate([np.full((1, parsed.actions.shape[1]), NO_LABEL, np.int32), parsed.actions[kept[:-1]]])
    steps = len(kept)
    metadata = {
        "source": "vpt", "segment": segment.name, "action_space": minecraft_action_space().name, "fps": 20,
        "action_lines": lines, "video_frames": decoded, "trailing_frames": decoded - lines,
        "null_actions": int(parsed.null.sum()),
        "null_dropped": lines - steps, "gui_frames": int(parsed.gui_open[kept].sum()),
    }
    return Episode(segment.episode_id, frames, actions, np.zeros(steps, np.float32), np.zeros(steps, bool), metadata)
