"""World-model service actor: batched `act` for live episodes of every caller, one KV-cache slot per episode, and
batched `imagine` for imagination workers.

    service = WorldModelService.remote(ServiceSpec(tokenizer_cfg, dynamics_cfg, heads_cfg, action_space))
    ray.get(service.set_weights.remote(1, ray.put({"tokenizer": ..., "dynamics": ..., "policy": ...})))
    slot = ray.get(service.open_episode.remote(seed=5))
    action, version, frame = ray.get(service.act.remote(slot, obs, last_action, frame_index=0))
    ray.get(service.close_episode.remote(slot))
    ray.get(service.close_owned.remote("r0"))            # slots opened with owner="r0" (a restarted env runner)
    ray.get(service.set_weights.remote(2, ray.put({"heads": ..., "prior": ...})))    # before the first imagine
    data = ray.get(service.imagine.remote(context, actions, horizon=16, seed=7))     # encoded ImaginedTrajectory

obs (H, W, 3) uint8, last_action (A,) int (-1 at the episode start); action (A,) int64. imagine: context
(B, T0, H, W, 3) uint8 frames or (B, T0, N_z, D_z) float32 latents, actions (B, T0, A) int, task (B,) or None
-> the ImaginedTrajectory's bytes (system/imagination/trajectory.py, no pickle; its policy_version is the
weights version that imagined it), which a worker stores as they are. An async actor: calls from all callers
meet in one event loop, where system/imagination/request_batcher.py gathers them into batches of one kind (acts;
imagine requests of one shape), at most spec.max_wait_ms after the first or spec.max_batch rows, for
system/imagination/acting_service.py, which owns the models, the slots and the weights version. The oldest
waiting request opens each batch, so acts and imagine requests do not starve each other, and an imagine batch
runs in pieces of about one imagined frame's work with the acts that arrived meanwhile answered between them:
an act waits for at most one piece of each rollout in progress, not a whole rollout. A weight swap waits its
turn between two batches (after the last piece of a rollout in progress), so every action and trajectory comes with the version that computed it and no
batch mixes versions. Weights arrive as an object reference (Ray's object store), never through the replay
store.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import ray
import torch

from system.envs.action_space import ActionSpace
from system.imagination.acting_service import ActingService, ActRequest, batch_key, batch_kind, batch_rows
from system.imagination.generation import GenerationConfig
from system.imagination.imagine_service import ImagineRequest
from system.imagination.request_batcher import RequestBatcher
from system.imagination.trajectory import encode_trajectory
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.tokenizer import Tokenizer, TokenizerConfig


@dataclass(frozen=True)
class ServiceSpec:
    tokenizer: TokenizerConfig
    dynamics: DynamicsConfig
    heads: AgentHeadsConfig
    action_space: ActionSpace
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    slots: int = 64                # live episodes at once (KV-cache rows)
    max_batch: int = 64            # rows per batch: an act is one, an imagine request its B start contexts
    max_wait_ms: float = 2.0       # gathering window after a batch's first request
    imagine_wait_ms: float = 20.0  # imagine batches' own window: callers send one request per rollout of H frames
    argmax: bool = False           # arg-max actions instead of samples (evaluation, tests)
    seed: int = 0
    threads: int = 0               # torch intra-op threads of the compute thread; 0: torch's default
    device: str = "cpu"            # "cuda" with .options(num_gpus=1) (not run yet: no GPU in the tests)


class WorldModelServiceShell:
    def __init__(self, spec: ServiceSpec):
        if spec.threads:
            torch.set_num_threads(spec.threads)
        torch.manual_seed(spec.seed)  # the weights come with set_weights; this only makes version 0 repeatable
        device = torch.device(spec.device)
        heads = AgentHeads(spec.heads, spec.action_space.components, spec.dynamics.agent_tokens,
                           spec.dynamics.transformer.dim).to(device)
        self.service = ActingService(Tokenizer(spec.tokenizer).to(device),
                                     Dynamics(spec.dynamics, spec.action_space).to(device), heads.policy,
                                     spec.generation, spec.slots, spec.argmax, spec.seed,
                                     heads=heads, prior=copy.deepcopy(heads.policy))
        waits_ms = {"act": spec.max_wait_ms, "imagine": spec.imagine_wait_ms}
        self.batcher = RequestBatcher(self.service.run_batch, spec.max_batch, spec.max_wait_ms / 1000.0,
                                      key=batch_key, kind=batch_kind, size=batch_rows,
                                      wait=lambda kind: waits_ms[kind[0]] / 1000.0)

    async def open_episode(self, seed: int | None = None, owner: str | None = None) -> int:
        return self.service.open_episode(seed, owner)

    async def close_owned(self, owner: str) -> int:
        return self.service.close_owned(owner)

    async def close_episode(self, slot: int) -> None:
        self.service.close_episode(slot)

    async def act(self, slot: int, obs, last_action, frame_index: int | None = None) -> tuple:
        request = self.service.admit(ActRequest(slot, obs, last_action), frame_index)
        result = await self.batcher.submit(request)
        return result.action, result.version, result.frame

    async def imagine(self, context, actions, horizon: int, seed: int, task=None, argmax: bool = False) -> bytes:
        request = self.service.admit_imagine(ImagineRequest(context, actions, horizon, seed, task, argmax))
        return encode_trajectory(await self.batcher.submit(request))

    async def set_weights(self, version: int, weights: dict, same_version: bool = False) -> int:
        return await self.batcher.control(lambda: self.service.load_weights(version, weights, same_version))

    async def stats(self) -> dict:
        return {**self.batcher.stats(), "version": self.service.version, "slots": self.service.slots,
                "live_episodes": self.service.live_episodes()}


WorldModelService = ray.remote(num_cpus=0)(WorldModelServiceShell)
