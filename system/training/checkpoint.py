"""Checkpoints: plain dicts of tensors and primitives, loadable with torch.load(weights_only=True).

    save_checkpoint(path, {"model": model.state_dict(), "config": to_dict(cfg), "step": 100})
    state = load_checkpoint(path)       # never unpickles arbitrary objects

Writes go to a temporary file first and are renamed into place, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save_checkpoint(path: str | Path, state: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a loadable weights-only checkpoint ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(state).__name__}")
    return state
