"""The RLModule that env runners act with once a policy exists: it asks the world-model service for each action.

    spec = RLModuleSpec(module_class=ServicePolicyModule, model_config={"service": handle, "seed": 3, "owner": "r0"})
    config.env_runners(env_to_module_connector=lambda env, spaces, device: PreviousActionToBatch())

In:  batch[Columns.OBS] (B, 1, H, W, 3) uint8 and batch["prev_actions"] (B, 1, A) int64 (-1 at an episode's first
     frame; actors/previous_action_connector.py), one row per sub-env (RLlib adds the time rank of 1 because the
     module is stateful); batch[Columns.STATE_IN] {"slot": (B,), "frame": (B,)} int64.
Out: {Columns.ACTIONS: (B, 1, A) int64, Columns.STATE_OUT: {"slot": (B,), "frame": (B,)}}.

The module holds no model, no weights and no KV cache: the service (actors/world_model_service.py) owns them, and
RLlib stores STATE_OUT in every step of every episode, so the state is only a handle into the service: the
episode's KV-cache slot and the number of its frames the service has seen (sent as `frame_index`, so a lost or
repeated frame is an error in the service, not a silent drift). The initial state has slot -1: the module opens
an episode for that row (open_episode) and acts with frame index 0.

Freeing slots: RLlib starts a new episode in a sub-env by handing the module that row with the initial state
again (after a done, and after any reset of all envs, e.g. an env step failure, which fires no
`on_episode_end`), so a row showing slot -1 closes the slot the module opened for the row's previous episode
before opening the next. This covers every way an episode ends, with no callback; the frame right after a done
(RLlib still asks for an action on the terminal frame, which the vector env drops at its autoreset) acts in
the old slot, harmless. `release()` closes the slots still held (a runner that stops). Episodes are opened
with the module's `owner` (the runner's name, the same in each of its lives), and a new module first frees
every slot of that owner: a runner that died with episodes open gets their slots back when it restarts.

All rows' requests of one forward go out together, so the service batches them with other runners' requests.
Each episode's noise seed is `world_noise_seed` of its world when the batch carries batch["world"] (B, 1, 2)
(actors/world_connector.py; the evaluator), else `episode_seed(seed, k)` for the module's k-th episode (tests
replay it). `version` is the newest weights version the service answered with.
"""

from __future__ import annotations

import time

import numpy as np
import ray
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from actors.previous_action_connector import PREV_ACTIONS
from actors.world_connector import WORLD
from system.imagination.acting_service import world_noise_seed

NO_SLOT = -1


def episode_seed(seed: int, k: int) -> int:
    """Noise seed of the module's k-th episode: distinct per module seed and episode."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0] % 2**31)


class ServicePolicyModule(TorchRLModule):
    def setup(self):
        self.service = self.model_config["service"]
        self.seed = int(self.model_config.get("seed", 0))
        self.owner = self.model_config.get("owner")
        if self.owner is not None:  # slots left open by this runner's previous process, if it died
            ray.get(self.service.close_owned.remote(self.owner))
        self.held: dict[int, int] = {}      # row (sub-env) -> slot opened for the row's current episode
        self.opened = 0                     # episodes opened so far (the k of episode_seed)
        self.latencies_s: list[float] = []  # one per forward: the round trip of its rows' act calls
        self.version = 0                    # the newest weights version that answered

    def get_initial_state(self) -> dict:
        return {"slot": torch.tensor(NO_SLOT), "frame": torch.tensor(0)}

    def _forward(self, batch, **kwargs):
        obs = batch[Columns.OBS][:, 0].cpu().numpy()            # (B, H, W, 3) uint8
        previous = batch[PREV_ACTIONS][:, 0].cpu().numpy()      # (B, A)
        slots = batch[Columns.STATE_IN]["slot"].cpu().numpy().astype(np.int64).reshape(-1)
        frames = batch[Columns.STATE_IN]["frame"].cpu().numpy().astype(np.int64).reshape(-1)
        worlds = batch[WORLD][:, 0].cpu().numpy() if WORLD in batch else None   # (B, 2): seed, index
        self._start_new_episodes(slots, frames, worlds)
        start = time.perf_counter()
        answers = ray.get([self.service.act.remote(int(slots[i]), obs[i], previous[i], frame_index=int(frames[i]))
                           for i in range(len(slots))])
        self.latencies_s.append(time.perf_counter() - start)
        self.version = max([self.version, *(version for _, version, _ in answers)])
        actions = np.stack([np.asarray(action, np.int64) for action, _, _ in answers])
        return {Columns.ACTIONS: torch.from_numpy(actions)[:, None],
                Columns.STATE_OUT: {"slot": torch.from_numpy(slots),
                                    "frame": torch.tensor([frame for _, _, frame in answers], dtype=torch.int64)}}

    def _start_new_episodes(self, slots: np.ndarray, frames: np.ndarray, worlds: np.ndarray | None) -> None:
        """Rows with slot -1 begin an episode: free the row's previous slot, open one (in place in slots/frames)."""
        for row, slot in enumerate(slots):
            if slot != NO_SLOT and self.held.get(row) != slot:
                raise RuntimeError(f"row {row} acts in slot {slot} but this module opened slot {self.held.get(row)} "
                                   "for it: the episode's state handle does not come from this module")
        rows = [row for row, slot in enumerate(slots) if slot == NO_SLOT]
        ray.get([self.service.close_episode.remote(self.held.pop(row)) for row in rows if row in self.held])
        seeds = [episode_seed(self.seed, self.opened + n) if worlds is None else
                 world_noise_seed({"seed": worlds[row, 0], "index": worlds[row, 1]}) for n, row in enumerate(rows)]
        self.opened += len(rows)
        for row, slot in zip(rows, ray.get([self.service.open_episode.remote(seed, self.owner) for seed in seeds])):
            slots[row], frames[row], self.held[row] = slot, 0, slot

    def release(self) -> None:
        """Closes every slot this module still holds (its episodes end unfinished)."""
        ray.get([self.service.close_episode.remote(slot) for slot in self.held.values()])
        self.held.clear()
