"""Policies for collecting Crafter datasets: random, scripted, or a checkpointed policy from a factory.

    policy = make_policy("scripted", checkpoint="", action_space=crafter_action_space())
    policy.reset(seed)                       # before every episode; makes the episode reproducible
    action = policy.act(frame, info)         # frame (H, W, 3) uint8, info from CrafterEnv -> (A,) int

`<module>:<factory>` names a function `factory(checkpoint: str, action_space: ActionSpace) -> Policy`, for
example one that restores the agent's weights with `torch.load(..., weights_only=True)`; this module never
unpickles anything itself. A policy given the same seed must act the same for ingest re-runs to complete a
partially stored episode consistently (the ingest checks the stored part against the regenerated one).
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from system.envs.action_space import CRAFTER_ACTIONS, ActionSpace

_A = {name: index for index, name in enumerate(CRAFTER_ACTIONS)}
_MOVES = [_A["move_left"], _A["move_right"], _A["move_up"], _A["move_down"]]


class Policy(Protocol):
    def reset(self, seed: int) -> None: ...

    def act(self, frame: np.ndarray, info: dict) -> np.ndarray: ...


class RandomPolicy:
    """Uniform over every component's classes."""

    def __init__(self, action_space: ActionSpace):
        self.nvec = np.array(action_space.nvec)
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, frame: np.ndarray, info: dict) -> np.ndarray:
        return (self.rng.random(len(self.nvec)) * self.nvec).astype(np.int32)


class ScriptedCrafterPolicy:
    """A simple explorer: walks in one direction for a few steps, hits what is in front ('do'), sleeps when
    tired, and tries crafting and placing when the inventory allows. Reaches more achievements than random
    (wood, sapling, table, pickaxe, ...), which makes a more varied offline dataset; it is not a strong agent."""

    def __init__(self, action_space: ActionSpace):
        if action_space.nvec != (len(CRAFTER_ACTIONS),):
            raise ValueError("the scripted policy is for the Crafter action space")
        self.rng = np.random.default_rng(0)
        self.direction, self.remaining, self.hits = _MOVES[0], 0, 0

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.direction, self.remaining, self.hits = _MOVES[0], 0, 0

    def act(self, frame: np.ndarray, info: dict) -> np.ndarray:
        inventory = info.get("inventory", {})
        if inventory.get("energy", 9) < 3 and self.rng.random() < 0.8:
            return np.array([_A["sleep"]], np.int32)
        craft = self._craft(inventory)
        if craft is not None and self.rng.random() < 0.3:
            return np.array([craft], np.int32)
        if self.hits > 0:
            self.hits -= 1
            return np.array([_A["do"]], np.int32)
        if self.remaining == 0:
            self.direction = int(self.rng.choice(_MOVES))
            self.remaining = int(self.rng.integers(2, 8))
        self.remaining -= 1
        if self.rng.random() < 0.35:   # face something and hit it a few times (trees need several hits)
            self.hits = int(self.rng.integers(1, 5))
        return np.array([self.direction], np.int32)

    def _craft(self, inventory: dict) -> int | None:
        wood, stone = inventory.get("wood", 0), inventory.get("stone", 0)
        options = []
        if wood >= 1:
            options += [_A["make_wood_pickaxe"], _A["make_wood_sword"]]
        if wood >= 2:
            options.append(_A["place_table"])
        if stone >= 1:
            options.append(_A["place_stone"])
            if wood >= 1:
                options += [_A["make_stone_pickaxe"], _A["make_stone_sword"]]
        if inventory.get("sapling", 0) >= 1:
            options.append(_A["place_plant"])
        return int(self.rng.choice(options)) if options else None


def make_policy(name: str, checkpoint: str, action_space: ActionSpace) -> Policy:
    if name == "random":
        return RandomPolicy(action_space)
    if name == "scripted":
        return ScriptedCrafterPolicy(action_space)
    module_name, sep, factory_name = name.partition(":")
    if not sep or not module_name or not factory_name:
        raise ValueError(f"policy {name!r}: expected 'random', 'scripted' or '<module>:<factory>'")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"policy {name!r}: cannot load the factory ({error})") from None
    policy = factory(checkpoint, action_space)
    for method in ("reset", "act"):
        if not callable(getattr(policy, method, None)):
            raise ValueError(f"policy {name!r}: the factory returned an object without {method}()")
    return policy
