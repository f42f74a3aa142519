"""Minecraft camera actions as μ-law bins: degrees <-> 11 bins per axis <-> one 121-way class.

    bins = MINECRAFT_CAMERA.to_bins(np.array([0.3, -7.0]))   # per-axis bin indices in [0, 11)
    index = MINECRAFT_CAMERA.encode(np.array([[0.3, -7.0]]))  # (...,2) [pitch, yaw] degrees -> (...,) in [0, 121)
    pitch_yaw = MINECRAFT_CAMERA.decode(index)              # (...,) -> (...,2) bin-centre degrees

The scheme is VPT's (openai/Video-Pre-Training `lib/actions.py::CameraQuantizer` with `agent.py`'s
ACTION_TRANSFORMER_KWARGS: camera_maxval 10, binsize 2, mu_law, mu 10): clip to ±maxval, μ-law compress,
then round to a uniform grid. Fine bins near zero keep small aiming moves; everything beyond ±10° per step
saturates. The joint index is `pitch_bin * 11 + yaw_bin` as in VPT's `CameraHierarchicalMapping`
(camera[0] is pitch = mouse dy, camera[1] is yaw = mouse dx, MineRL's [pitch, yaw] order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraQuantizer:
    maxval: float = 10.0     # degrees per step; larger moves saturate
    binsize: float = 2.0     # average bin width in the μ-law domain (degrees)
    mu: float = 10.0         # μ-law curvature

    @property
    def bins_per_axis(self) -> int:
        return int(round(2 * self.maxval / self.binsize)) + 1

    @property
    def num_classes(self) -> int:
        return self.bins_per_axis ** 2

    @property
    def zero_bin(self) -> int:
        return self.bins_per_axis // 2

    @property
    def null_index(self) -> int:
        """The joint class of 'no camera movement' (60 for 11x11)."""
        return self.zero_bin * self.bins_per_axis + self.zero_bin

    def to_bins(self, degrees: np.ndarray) -> np.ndarray:
        """Degrees (any shape) -> int64 bin indices of the same shape."""
        x = np.clip(np.asarray(degrees, dtype=np.float64), -self.maxval, self.maxval) / self.maxval
        compressed = np.sign(x) * np.log1p(self.mu * np.abs(x)) / np.log1p(self.mu) * self.maxval
        return np.round((compressed + self.maxval) / self.binsize).astype(np.int64)

    def from_bins(self, bins: np.ndarray) -> np.ndarray:
        """Bin indices (any shape) -> the bin centres in degrees (float64)."""
        bins = np.asarray(bins)
        if np.any((bins < 0) | (bins >= self.bins_per_axis)):
            raise ValueError(f"camera bins must lie in [0, {self.bins_per_axis}), got {bins.min()}..{bins.max()}")
        y = (bins * self.binsize - self.maxval) / self.maxval
        return np.sign(y) * ((1.0 + self.mu) ** np.abs(y) - 1.0) / self.mu * self.maxval

    def encode(self, pitch_yaw: np.ndarray) -> np.ndarray:
        """(..., 2) [pitch, yaw] degrees -> (...,) joint class in [0, bins_per_axis**2)."""
        bins = self.to_bins(pitch_yaw)
        return bins[..., 0] * self.bins_per_axis + bins[..., 1]

    def decode(self, index: np.ndarray) -> np.ndarray:
        """(...,) joint class -> (..., 2) [pitch, yaw] bin-centre degrees."""
        index = np.asarray(index)
        if np.any((index < 0) | (index >= self.num_classes)):
            raise ValueError(f"camera classes must lie in [0, {self.num_classes}), got {index.min()}..{index.max()}")
        pitch, yaw = np.divmod(index, self.bins_per_axis)
        return np.stack([self.from_bins(pitch), self.from_bins(yaw)], axis=-1)


MINECRAFT_CAMERA = CameraQuantizer()
