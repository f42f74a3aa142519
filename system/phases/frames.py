"""Replay frames to model input: (..., H, W, 3) uint8 numpy -> (..., H, W, 3) float32 in [0, 1] on a device."""

from __future__ import annotations

import numpy as np
import torch


def frames_to_float(frames: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).float().div_(255.0)
