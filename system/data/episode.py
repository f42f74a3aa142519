"""Episode: one recorded or collected episode in the project's step convention, as readers yield it.

    Episode(episode_id, frames (T, H, W, 3) uint8, actions (T, A) int32, rewards (T,) float32,
            terminals (T,) bool, metadata dict)

Step t holds frame t, the action that PRODUCED frame t, the reward received on arriving at frame t, and whether
frame t is terminal. Step 0 has action -1 in every column ("no label") and reward 0. A source with T actions
and T+1 frames (MineRL: states s0..sT) therefore gives T+1 steps: step t = frame t, action[t-1], reward[t-1].
`episode_id` is stable across runs (derived from the source's names), so re-ingesting finds what is stored.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from system.envs.action_space import NO_LABEL

_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9_.:@/+=-]")   # the replay store's episode id alphabet
MAX_ID_LENGTH = 128


def make_episode_id(*parts: str) -> str:
    """A stable episode id from source names, e.g. ('minerl', env, stream) -> 'minerl/<env>/<stream>'.

    Characters outside the store's alphabet become '_'; when that changes the text or it is too long, a hash of
    the original is appended so two different sources never share an id.
    """
    text = "/".join(parts)
    clean = _NOT_ID_CHAR.sub("_", text)
    if clean == text and len(clean) <= MAX_ID_LENGTH:
        return clean
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
    return f"{clean[:MAX_ID_LENGTH - 17]}-{digest}"


@dataclass
class Episode:
    episode_id: str
    frames: np.ndarray      # (T, H, W, 3) uint8
    actions: np.ndarray     # (T, A) int32, -1 = no label
    rewards: np.ndarray     # (T,) float32
    terminals: np.ndarray   # (T,) bool
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.frames = np.asarray(self.frames)
        self.actions = np.asarray(self.actions)
        self.rewards = np.asarray(self.rewards, dtype=np.float32)
        self.terminals = np.asarray(self.terminals, dtype=bool)
        steps = len(self.frames)
        where = f"episode {self.episode_id!r}"
        if not self.episode_id:
            raise ValueError("an episode needs a non-empty episode_id")
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[-1] != 3 or steps < 1:
            raise ValueError(f"{where}: frames must be uint8 (T, H, W, 3) with T >= 1, got "
                             f"{self.frames.dtype} {self.frames.shape}")
        if self.actions.ndim != 2 or len(self.actions) != steps or not np.issubdtype(self.actions.dtype, np.integer):
            raise ValueError(f"{where}: actions must be integer (T={steps}, A), got {self.actions.dtype} "
                             f"{self.actions.shape}")
        self.actions = self.actions.astype(np.int32, copy=False)
        if self.rewards.shape != (steps,) or self.terminals.shape != (steps,):
            raise ValueError(f"{where}: rewards and terminals must have shape ({steps},), got "
                             f"{self.rewards.shape} and {self.terminals.shape}")
        if np.any(self.actions[0] != NO_LABEL) or self.rewards[0] != 0:
            raise ValueError(f"{where}: step 0 must have action -1 and reward 0 (nothing produced frame 0)")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_transitions(self) -> int:
        return len(self.frames) - 1
