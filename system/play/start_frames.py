"""Where a played world starts: real frames the tokenizer encodes into the generation context.

    starts = CrafterStarts(cfg, context_frames=8, held_out=8)
    starts.choices()                          # [StartChoice("held_out:0", "held-out world 0"), ..., "fresh"]
    context = starts.context("held_out:3", seed=7)
    context.frames                            # (T0, H, W, 3) uint8 real frames
    context.actions                           # (T0, A) int32, the action that led to each frame (-1: none)

Crafter runs: held-out world i is episode i of the collection the main job holds out
(data.collect.seed + HELD_OUT_SEED_OFFSET, data.collect's policy, system/data/held_out.py), its first T0
frames, collected when first chosen and kept; "fresh" resets a real Crafter world with the given seed and
stands still (noop) for T0 - 1 steps. A Crafter world generation takes seconds: call from a worker thread.
Dataset runs (env.name minerl:<Env>): TableStarts offers clips of T0 steps from the run's held-out table
(data.ingest.held_out_table, what ingest held out), drawn once when the server starts; there is no fresh world.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from system.data.collect import crafter_sources
from system.data.held_out import HELD_OUT_SEED_OFFSET
from system.data.ingested_tables import held_out_from_table
from system.envs.action_space import NO_LABEL, crafter_action_space
from system.envs.crafter_env import CrafterEnv

FRESH = "fresh"


@dataclass(frozen=True)
class StartChoice:
    id: str
    label: str


@dataclass(frozen=True)
class StartContext:
    frames: np.ndarray     # (T0, H, W, 3) uint8
    actions: np.ndarray    # (T0, A) int32
    label: str


class UnknownStart(ValueError):
    """A start id that is not among the choices."""


def _held_out_index(choice: str, count: int) -> int:
    prefix, _, number = choice.partition(":")
    if prefix != "held_out" or not number.isdigit() or int(number) >= count:
        raise UnknownStart(f"unknown start {choice!r}: choose held_out:0 .. held_out:{count - 1}")
    return int(number)


class CrafterStarts:
    def __init__(self, cfg, context_frames: int, held_out: int = 8):
        if context_frames < 1:
            raise ValueError(f"context_frames must be >= 1, got {context_frames}")
        self.size = tuple(cfg.data.ingest.size)
        self.context_frames, self.held_out = context_frames, held_out
        # an episode of T0 - 1 steps has T0 frames (the reset frame first); longer ones begin the same way
        self.collect = dataclasses.replace(cfg.data.collect, episodes=held_out, max_episode_steps=context_frames - 1,
                                           seed=cfg.data.collect.seed + HELD_OUT_SEED_OFFSET)
        self.kept: dict[int, StartContext] = {}

    def choices(self) -> list[StartChoice]:
        worlds = [StartChoice(f"held_out:{i}", f"held-out world {i}") for i in range(self.held_out)]
        return [*worlds, StartChoice(FRESH, "fresh Crafter world")]

    def context(self, choice: str, seed: int) -> StartContext:
        if choice == FRESH:
            return self.fresh_world(seed)
        index = _held_out_index(choice, self.held_out)
        if index not in self.kept:
            source = next(s for s in crafter_sources(self.collect, size=self.size) if s.index == index)
            episode = source.read()
            self.kept[index] = StartContext(episode.frames[:self.context_frames],
                                            episode.actions[:self.context_frames], f"held-out world {index}")
        return self.kept[index]

    def fresh_world(self, seed: int) -> StartContext:
        env = CrafterEnv(size=self.size, seed=seed)
        frame, _ = env.reset(seed=seed)
        noop = crafter_action_space().noop()
        frames, actions = [frame], [np.full_like(noop, NO_LABEL)]
        for _ in range(self.context_frames - 1):
            frame, *_ = env.step(noop)
            frames.append(frame)
            actions.append(noop)
        return StartContext(np.stack(frames), np.stack(actions), f"fresh Crafter world (seed {seed})")


class TableStarts:
    def __init__(self, store, cfg, context_frames: int, held_out: int = 8):
        frames, actions = held_out_from_table(store, cfg, clips=held_out, frames=context_frames)
        self.contexts = [StartContext(frames[i], actions[i], f"held-out clip {i}") for i in range(len(frames))]

    def choices(self) -> list[StartChoice]:
        return [StartChoice(f"held_out:{i}", c.label) for i, c in enumerate(self.contexts)]

    def context(self, choice: str, seed: int) -> StartContext:
        return self.contexts[_held_out_index(choice, len(self.contexts))]
