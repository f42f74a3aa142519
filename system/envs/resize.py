"""Frame resizing without OpenCV: (N, H, W, 3) uint8 -> (N, h, w, 3) uint8 with torch's interpolate.

    small = resize_frames(frames, (64, 64), method="area")

`area` averages every source pixel into its target pixel (a box filter; no aliasing when shrinking 640x360
video to 64x64). `bilinear` samples with half-pixel centres and no antialiasing, which is what VPT's loader
gets from cv2.resize(..., INTER_LINEAR). Frames go through in batches so large videos stay within memory.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

ResizeMethod = Literal["area", "bilinear"]


def resize_frames(frames: np.ndarray, size: tuple[int, int], method: ResizeMethod = "area",
                  batch: int = 256) -> np.ndarray:
    """Resizes (N, H, W, C) or (H, W, C) uint8 frames to (height, width) = `size`."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4):
        raise ValueError(f"expected uint8 frames (N, H, W, C) or (H, W, C), got {frames.dtype} {frames.shape}")
    if frames.ndim == 3:
        return resize_frames(frames[None], size, method, batch)[0]
    height, width = int(size[0]), int(size[1])
    if frames.shape[1:3] == (height, width):
        return frames
    if method not in ("area", "bilinear"):
        raise ValueError(f"resize method must be 'area' or 'bilinear', got {method!r}")
    out = np.empty((len(frames), height, width, frames.shape[3]), dtype=np.uint8)
    for start in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch])).permute(0, 3, 1, 2).float()
        if method == "area":
            y = F.interpolate(x, size=(height, width), mode="area")
        else:
            y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
        out[start:start + batch] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out
