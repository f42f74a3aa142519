"""Env-to-module connector: each sub-env's previous action as a batch column, for the service policy module.

    config.env_runners(env_to_module_connector=lambda env, spaces, device: PreviousActionToBatch())

Out: batch["prev_actions"], one (A,) int64 item per episode: the action that produced the episode's latest frame,
-1 in every component at the episode's first frame (the replay convention, system/envs/action_space.NO_LABEL).
RLlib's default pieces that run after this one add the time rank and batch it: (B, 1, A) in the module.

RLlib's own PrevActionsPrevRewards rewrites the episode's observations into dicts (which would then be the
frames stored in replay) and only handles Discrete spaces; this piece reads the episode and writes nothing to it.
An episode cut between two `sample` calls needs nothing special: RLlib builds the batch of the next call's first
forward at the end of the previous call, before the cut (and a cut episode keeps its last action in the
lookback buffer, so `get_actions(-1)` would answer it anyway).
"""

from __future__ import annotations

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2

from system.envs.action_space import NO_LABEL

PREV_ACTIONS = "prev_actions"


class PreviousActionToBatch(ConnectorV2):
    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs):
        for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=True):
            components = len(episode.action_space.nvec)   # a MultiDiscrete space (system/envs/crafter_env.py)
            if episode.t == 0:   # no env step yet: the reset frame
                previous = np.full(components, NO_LABEL, np.int64)
            else:
                previous = np.asarray(episode.get_actions(-1), np.int64).reshape(components)
            self.add_batch_item(batch, PREV_ACTIONS, previous, single_agent_episode=episode)
        return batch
