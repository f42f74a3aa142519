"""DataConfig: the `data:` section of the YAML config (ingest, the MineRL and VPT readers, the Crafter collector)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Literal


def is_held_out(episode_id: str, every: int) -> bool:
    """Whether an episode belongs to the held-out split (1 in `every`; never for every = 0)."""
    return every > 0 and zlib.crc32(episode_id.encode()) % every == 0


@dataclass
class IngestConfig:
    table: str = "real"                          # replay table the episodes go to
    chunk_length: int = 64                       # steps per stored chunk (the last chunk of an episode is shorter)
    size: tuple[int, int] = (64, 64)             # stored frame (height, width); sources are resized to it
    resize: Literal["area", "bilinear"] = "area" # area averages (no aliasing); bilinear is VPT's cv2 INTER_LINEAR
    action_space: str = ""                       # "", "crafter", "vpt" or "minerl:<Env>"; "" = from env.name / source
    task_id: int = -1                            # written on every chunk; -1 = no task
    limit: int = 0                               # at most this many episodes per run (0 = all)
    # 1 episode in N goes to held_out_table instead of `table` (0 = none): evaluation clips from episodes no
    # phase trains on. Chosen by a hash of the episode id, so the split stays the same as a dataset grows.
    held_out_every: int = 0
    held_out_table: str = "held_out"

    def __post_init__(self):
        if self.held_out_every < 0 or self.held_out_every == 1:
            raise ValueError(f"data.ingest.held_out_every = {self.held_out_every}: 0 (no held-out episodes) or N >= 2 "
                             "(1 episode in N held out)")
        if self.held_out_every and self.held_out_table == self.table:
            raise ValueError(f"data.ingest.held_out_table = {self.held_out_table!r} is the training table "
                             "data.ingest.table: held-out episodes need a table of their own")
        if self.chunk_length < 1:
            raise ValueError("data.ingest.chunk_length must be >= 1")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"data.ingest.size must be (height, width), got {self.size}")


@dataclass
class MineRLDataConfig:
    envs: list[str] = field(default_factory=list)  # environment directories to read; empty = all MineRL v0 envs
    duplicate_last_frame: bool = True              # as MineRL's DataPipeline (frames[-1] = frames[-2])
    check_resolution: bool = True                  # refuse videos that are not 64x64


@dataclass
class VptDataConfig:
    drop_null_actions: bool = True                 # VPT trains only on non-null steps
    fix_stuck_attack: bool = True
    hotbar_from_state: bool = True
    draw_cursor: bool = True
    check_resolution: bool = True                  # refuse videos that are not 640x360


@dataclass
class CollectConfig:
    episodes: int = 10
    policy: str = "random"                         # random | scripted | <module>:<factory> (a checkpointed policy)
    checkpoint: str = ""                           # passed to the policy factory
    seed: int = 0                                  # episode i uses world seed and policy seed derived from (seed, i)
    max_episode_steps: int = 0                     # 0 = Crafter's 10000

    def __post_init__(self):
        if self.episodes < 0:
            raise ValueError("data.collect.episodes must be >= 0")


@dataclass
class DataConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    minerl: MineRLDataConfig = field(default_factory=MineRLDataConfig)
    vpt: VptDataConfig = field(default_factory=VptDataConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
