"""make_env(EnvConfig) -> a gymnasium environment: 'crafter' or 'minerl:<MineRL v0 env name>'."""

from __future__ import annotations

import gymnasium

from system.envs.config import EnvConfig


def make_env(cfg: EnvConfig) -> gymnasium.Env:
    if cfg.name == "crafter":
        from system.envs.crafter_env import CrafterEnv
        return CrafterEnv(size=cfg.size, seed=cfg.seed, max_episode_steps=cfg.max_episode_steps)
    if cfg.name.startswith("minerl:"):
        from system.envs.minerl_env import MineRLEnv
        return MineRLEnv(cfg.name.split(":", 1)[1], size=cfg.size, seed=cfg.seed,
                         max_episode_steps=cfg.max_episode_steps)
    raise ValueError(f"env.name {cfg.name!r}: expected 'crafter' or 'minerl:<EnvName>'")
