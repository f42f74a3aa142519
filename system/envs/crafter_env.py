"""Crafter (pip `crafter`) as a gymnasium environment with the project's factored action.

    env = CrafterEnv(size=(64, 64), seed=0)
    frame, info = env.reset()                      # frame: (H, W, 3) uint8
    frame, reward, terminated, truncated, info = env.step(np.array([5]))   # action (1,) int, or a plain int

Actions are one categorical column of 17 classes in crafter's order (action_space.crafter_action_space()).
`terminated` means the player died (crafter's discount 0); reaching the length limit is `truncated`.
`info` carries `achievements` (name -> count this episode), `inventory`, `discount` and `player_pos`; on the
last step also `episode` = {return, length, achievements} for crafter_score.CrafterStats. Every info (the reset's
too) names the episode's world: `world` = {"seed": s, "index": j}, the j-th world (from 0) of the sequence
seeded s, so an evaluation can tell which world an episode played wherever it ran (and seed its noise by it).

Seeding: `reset(seed=s)` starts crafter's world sequence at seed s (world k is derived from (s, k) by crafter
itself), so the same seed and the same actions reproduce the same frames, in this process and in any other.
Without a seed, the first reset uses the constructor's seed and later resets continue the sequence.
Crafter alone is not reproducible across processes: when it balances creatures it draws one from a Python set
ordered by memory address. `DeterministicCrafter` hands it the creatures sorted by position instead.
"""

from __future__ import annotations

from typing import Any

import crafter
import gymnasium
import numpy as np

from system.envs.action_space import crafter_action_space

DEFAULT_LENGTH = 10000  # crafter.Env's own episode limit


class DeterministicCrafter(crafter.Env):
    """crafter.Env whose creature balancing sees the objects of a chunk in a fixed order (by position; two
    objects never share a cell), so a seed reproduces an episode in every process."""

    def _balance_object(self, chunk, objs, *args, **kwargs):
        ordered = sorted(objs, key=lambda obj: (int(obj.pos[0]), int(obj.pos[1])))
        return super()._balance_object(chunk, ordered, *args, **kwargs)


class CrafterEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, size: tuple[int, int] = (64, 64), seed: int = 0, max_episode_steps: int = 0,
                 render_mode: str | None = "rgb_array"):
        self.size = (int(size[0]), int(size[1]))
        self.length = max_episode_steps or DEFAULT_LENGTH
        self.render_mode = render_mode
        self.action_spec = crafter_action_space()
        self.action_space = self.action_spec.to_gymnasium()
        self.observation_space = gymnasium.spaces.Box(0, 255, (*self.size, 3), np.uint8)
        self._seed = int(seed)
        self._world = {"seed": self._seed, "index": -1}   # the current episode's world
        self._env: crafter.Env | None = None
        self._frame: np.ndarray | None = None
        self._return = 0.0
        self._steps = 0

    def _new_world_sequence(self, seed: int) -> crafter.Env:
        # crafter takes (width, height); our size is (height, width).
        return DeterministicCrafter(size=(self.size[1], self.size[0]), length=self.length, seed=seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._env is None:
            sequence = self._seed if seed is None else int(seed)
            self._env = self._new_world_sequence(sequence)
            self._world = {"seed": sequence, "index": -1}
        self._frame = self._env.reset()
        self._world = {"seed": self._world["seed"], "index": self._world["index"] + 1}
        self._return, self._steps = 0.0, 0
        info = {"achievements": {name: 0 for name in crafter.constants.achievements}, "discount": 1.0,
                "world": dict(self._world)}
        return self._frame, info

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._env is None:
            raise RuntimeError("CrafterEnv.step called before reset")
        index = int(np.asarray(action).reshape(-1)[0])
        if not 0 <= index < len(crafter.constants.actions):
            raise ValueError(f"Crafter action must be in [0, {len(crafter.constants.actions)}), got {index}")
        frame, reward, done, raw = self._env.step(index)
        terminated = raw["discount"] == 0.0
        truncated = bool(done and not terminated)
        self._frame = frame
        self._return += float(reward)
        self._steps += 1
        # Fresh objects every step (crafter hands out its live position array): callers may keep infos.
        info = {"achievements": dict(raw["achievements"]), "inventory": dict(raw["inventory"]),
                "discount": float(raw["discount"]), "player_pos": np.array(raw["player_pos"]),
                "world": dict(self._world)}
        if terminated or truncated:
            info["episode"] = {"return": self._return, "length": self._steps,
                               "achievements": dict(raw["achievements"])}
        return frame, float(reward), bool(terminated), truncated, info

    def render(self) -> np.ndarray | None:
        return self._frame
