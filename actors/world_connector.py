"""Env-to-module connector: each sub-env's current world as a batch column, for the service policy module.

    config.env_runners(env_to_module_connector=lambda env, spaces, device: [PreviousActionToBatch(), WorldToBatch()])

Out: batch["world"], one (2,) int64 item per episode: [seed, index] of the world the episode plays, read from the
env's latest info (CrafterEnv's info["world"], the reset's included). The module seeds a new episode's context
noise by it (system/imagination/acting_service.world_noise_seed), so an evaluation episode plays the same in an
env runner as in the driver. Envs whose infos name no world add no column (the module then seeds by count).
"""

from __future__ import annotations

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2

WORLD = "world"


class WorldToBatch(ConnectorV2):
    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs):
        for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=True):
            world = episode.get_infos(-1).get("world")
            if world is None:
                continue
            self.add_batch_item(batch, WORLD, np.array([world["seed"], world["index"]], np.int64),
                                single_agent_episode=episode)
        return batch
