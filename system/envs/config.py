"""EnvConfig: which environment to run and how (the `env:` section of the YAML config)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EnvConfig:
    name: str = "crafter"                   # "crafter" or "minerl:<MineRL v0 env>", e.g. "minerl:MineRLTreechop-v0"
    size: tuple[int, int] = (64, 64)        # frame (height, width); 64x64 is native for Crafter and MineRL v0
    seed: int = 0                           # first reset's world seed; later resets continue the env's sequence
    max_episode_steps: int = 0              # 0: the env's own limit (Crafter 10000, Treechop 8000, Diamond 18000)

    def __post_init__(self):
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"env.size must be (height, width) with positive entries, got {self.size}")
        if self.max_episode_steps < 0:
            raise ValueError("env.max_episode_steps must be >= 0")
        if not (self.name == "crafter" or self.name.startswith("minerl:")):
            raise ValueError(f"env.name {self.name!r}: expected 'crafter' or 'minerl:<EnvName>'")
