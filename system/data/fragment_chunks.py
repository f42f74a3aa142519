"""An episode fragment from an env runner (RLlib's SingleAgentEpisode chunk) as one replay Chunk.

    chunk = fragment_to_chunk(observations, actions, rewards, t_started, terminated, is_done, episode_id, nvec)

In:  observations (L+1, H, W, 3) uint8: frames t_started .. t_started + L (RLlib repeats the last frame of the
     previous fragment as the first of the next); actions (L, A) int, rewards (L,) float: action/reward of
     each of the L env steps; t_started: env steps before this fragment; terminated: the last frame is a death;
     is_done: the episode ended with this fragment (death or length limit).
Out: a Chunk in the replay step convention (chunk.py): the first fragment of an episode starts at step 0 with
     the reset frame, action -1, reward 0 (L+1 steps); a later fragment drops its repeated first frame and starts
     at step t_started + 1 (L steps). Offsets depend only on the episode, so chunks of one episode tile it.
"""

from __future__ import annotations

import numpy as np

from system.envs.action_space import NO_LABEL
from system.replay import Chunk


def fragment_to_chunk(observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, t_started: int,
                      terminated: bool, is_done: bool, episode_id: str, action_classes: tuple[int, ...],
                      task_id: int = -1) -> Chunk:
    observations = np.asarray(observations, dtype=np.uint8)
    actions = np.asarray(actions, dtype=np.int32).reshape(len(actions), len(action_classes))
    rewards = np.asarray(rewards, dtype=np.float32)
    steps = len(actions)
    if len(observations) != steps + 1 or len(rewards) != steps:
        raise ValueError(f"fragment of {episode_id!r}: {len(observations)} frames, {steps} actions, {len(rewards)} "
                         "rewards (want L + 1, L, L)")
    terminals = np.zeros(steps + 1, dtype=bool)
    terminals[-1] = bool(terminated)
    if t_started == 0:  # the reset frame is step 0: no action produced it
        actions = np.concatenate([np.full((1, len(action_classes)), NO_LABEL, np.int32), actions])
        rewards = np.concatenate([np.zeros(1, np.float32), rewards])
        frames, offset = observations, 0
    else:
        frames, terminals, offset = observations[1:], terminals[1:], t_started + 1
    return Chunk(frames=np.ascontiguousarray(frames), actions=np.ascontiguousarray(actions),
                 rewards=np.ascontiguousarray(rewards), terminals=np.ascontiguousarray(terminals),
                 episode_id=episode_id, step_offset=offset, task_id=task_id, is_last=bool(is_done),
                 action_classes=tuple(int(n) for n in action_classes))
