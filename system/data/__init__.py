"""Datasets: readers for the MineRL v0 and VPT on-disk formats, a Crafter collector, and the ingest CLI.

Readers yield `Episode`s (frames (T, H, W, 3) uint8, actions (T, A) int32, rewards (T,) float32,
terminals (T,) bool) in the project's step convention (episode.py); `python -m system.data.ingest` cuts them
into chunks and writes them to the replay store. See docs/data.md.
"""

from system.data.episode import Episode
from system.data.errors import DataError

__all__ = ["DataError", "Episode"]
