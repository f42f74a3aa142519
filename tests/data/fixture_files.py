"""Writers for fixture datasets in exactly the on-disk formats the readers read (see shared data-formats.md).

MineRL v0: `<root>/<Env>/<stream>/{recording.mp4 (PyAV, H.264), rendered.npz (np.savez_compressed, `$` keys),
metadata.json}`. VPT: `<name>.mp4` + `<name>.jsonl` (one JSON object per frame). Video frame i shows the number
i as a 4x4 grid of black/white blocks, so a test can read back which source frame landed at which step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from system.data.video import write_video

MINERL_KEYS = ["forward", "back", "left", "right", "jump", "sneak", "sprint", "attack"]
OBTAIN_ENUM_VALUES = {
    "place": ["none", "dirt", "stone", "cobblestone", "crafting_table", "furnace", "torch"],
    "equip": ["none", "air", "wooden_axe", "wooden_pickaxe", "stone_axe", "stone_pickaxe", "iron_axe", "iron_pickaxe"],
    "craft": ["none", "torch", "stick", "planks", "crafting_table"],
    "nearbyCraft": ["none", "wooden_axe", "wooden_pickaxe", "stone_axe", "stone_pickaxe", "iron_axe", "iron_pickaxe",
                    "furnace"],
    "nearbySmelt": ["none", "iron_ingot", "coal"],
}


def number_frame(number: int, height: int = 64, width: int = 64) -> np.ndarray:
    """An RGB frame showing `number` (< 2**16) as 16 black/white blocks, robust to H.264 and downscaling."""
    frame = np.zeros((height, width, 3), np.uint8)
    bh, bw = height // 4, width // 4
    for bit in range(16):
        if (number >> bit) & 1:
            row, col = divmod(bit, 4)
            frame[row * bh:(row + 1) * bh, col * bw:(col + 1) * bw] = 255
    return frame


def read_number(frame: np.ndarray) -> int:
    height, width = frame.shape[:2]
    bh, bw = height // 4, width // 4
    number = 0
    for bit in range(16):
        row, col = divmod(bit, 4)
        block = frame[row * bh:(row + 1) * bh, col * bw:(col + 1) * bw]
        number |= int(block[bh // 4: -bh // 4 or None, bw // 4: -bw // 4 or None].mean() > 127) << bit
    return number


def write_minerl_stream(root: Path, env_name: str, name: str, steps: int, extra_frames: int = 3, seed: int = 0,
                        dotted_keys: bool = False, enums_as_objects: bool = True, size=(64, 64),
                        video_frames: int | None = None, metadata_frames: int | None = None) -> dict:
    """Writes one stream with `steps` actions and `extra_frames` leading frames; returns the raw arrays written.

    Video frame i shows i, so the state s_t is video frame extra_frames + t. reward[t] = t + 1.
    """
    rng = np.random.default_rng(seed)
    stream = Path(root) / env_name / name
    stream.mkdir(parents=True, exist_ok=True)
    total = extra_frames + steps + 1 if video_frames is None else video_frames
    write_video(stream / "recording.mp4", np.stack([number_frame(i, *size) for i in range(total)]))

    sep = "." if dotted_keys else "$"
    actions = {key: rng.integers(0, 2, steps).astype(np.int64) for key in MINERL_KEYS}
    actions["camera"] = rng.uniform(-15, 15, (steps, 2)).astype(np.float32)
    enums = {}
    if env_name.startswith("MineRLObtain"):
        enums = {k: v for k, v in OBTAIN_ENUM_VALUES.items()}
    elif env_name.startswith("MineRLNavigate"):
        enums = {"place": ["none", "dirt"]}
    for key, values in enums.items():
        chosen = [values[i] for i in rng.integers(0, len(values), steps)]
        actions[key] = np.array(chosen, dtype=object if enums_as_objects else str)
    rewards = np.arange(1, steps + 1, dtype=np.float32)
    arrays = {"reward": rewards}
    arrays |= {f"action{sep}{key}": value for key, value in actions.items()}
    arrays[f"observation{sep}inventory{sep}dirt"] = rng.integers(0, 5, steps + 1)
    if env_name.startswith("MineRLObtain"):
        arrays[f"observation{sep}equipped_items.mainhand.type"] = np.array(["air"] * (steps + 1))
    np.savez_compressed(stream / "rendered.npz", **arrays)
    metadata = {"success": False, "duration_ms": steps * 50, "duration_steps": steps,
                "total_reward": float(rewards.sum()), "stream_name": name,
                "true_video_frame_count": total if metadata_frames is None else metadata_frames}
    (stream / "metadata.json").write_text(json.dumps(metadata))
    return {"path": stream, "actions": actions, "rewards": rewards, "extra_frames": extra_frames}


def vpt_line(keys=(), dx=0.0, dy=0.0, buttons=(), new_buttons=(), gui=False, hotbar=0, x=320.0, y=180.0) -> dict:
    """One jsonl record with the fields VPT's recorder writes (a subset of the rarely used ones)."""
    return {
        "mouse": {"x": x, "y": y, "dx": dx, "dy": dy, "scaledX": x - 320, "scaledY": y - 180, "dwheel": 0.0,
                  "buttons": list(buttons), "newButtons": list(new_buttons)},
        "keyboard": {"keys": [f"key.keyboard.{k}" for k in keys], "newKeys": [], "chars": ""},
        "isGuiOpen": gui, "isGuiInventory": gui, "hotbar": hotbar, "yaw": 0.0, "pitch": 0.0,
        "xpos": 0.0, "ypos": 64.0, "zpos": 0.0, "tick": 0, "milli": 0, "inventory": [], "serverTick": 0,
        "serverTickDurationMs": 0.0, "stats": {},
    }


def write_vpt_segment(root: Path, name: str, lines: list[dict], size=(360, 640), frames: int | None = None) -> Path:
    """`<root>/<name>.mp4` (frame i shows i) and `<root>/<name>.jsonl`; returns the mp4 path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    count = len(lines) if frames is None else frames
    write_video(root / f"{name}.mp4", np.stack([number_frame(i, *size) for i in range(count)]))
    (root / f"{name}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root / f"{name}.mp4"
