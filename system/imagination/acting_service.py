"""The world-model service's library object: live episodes in KV-cache slots, acting in batches, versioned weights.

    service = ActingService(tokenizer, dynamics, policy, GenerationConfig(), slots=64)
    slot = service.open_episode(seed=7)                 # a free slot; its first act starts the episode
    [result] = service.act([ActRequest(slot, frame, last_action)])   # frame (H, W, 3) uint8, last_action (A,)
    result.action, result.version, result.frame         # (A,) int64, weights version, frames seen so far
    service.close_episode(slot)                         # the slot is free for the next episode
    service.open_episode(seed=8, owner="r0"); service.close_owned("r0")   # free all of one caller's slots
    service.load_weights(version=2, states={"dynamics": ..., "policy": ...})
    service.load_weights(version=2, states={"heads": ..., "prior": ...}, same_version=True)   # more parts of it

    # with heads=AgentHeads (policy = heads.policy) and prior: imagination too (imagine_service.py)
    [traj] = service.imagine_batch([ImagineRequest(context, actions, horizon=16, seed=3)])   # at service.version
    service.run_batch(requests)                         # act_batch, or an imagine batch to advance frame by frame

No Ray here: actors/world_model_service.py wraps it in an async actor with a RequestBatcher in front. The work
is split so the shell can run the two halves on different threads: `admit` (slot bookkeeping, cheap, on the
caller's side: the actor's event loop) and `act_batch` (all tensor work, one batched LiveActor step over the
requested slots, on the compute thread). `act` does both, for single-threaded use.

Per episode the noise that re-noises context frames comes from the episode's own generator (seeded at
open_episode), so with arg-max actions an episode's actions are the same whichever episodes share its batches:
a single-episode LiveActor with `generator=torch.Generator().manual_seed(seed)` reproduces them (tests).
Sampled actions draw from one shared generator and so depend on the batching.

With the agent heads and the prior, the service also imagines: `imagine_batch` rolls out callers' start contexts
(system/imagination/imagine_service.py) and stamps each trajectory with the weights version; the weight parts
"heads" (policy, reward, continuation, value, slow value) and "prior" load then too. `batch_kind`, `batch_key`
and `batch_rows` tell a RequestBatcher how to batch a mixed stream: acts with acts (one row each, never two
frames of one slot), imagine requests with those of their shape (their B rows each).

An episode may name its owner (an env runner): `close_owned(owner)` frees every slot that owner still holds,
which a restarted runner calls for the episodes its previous process left open when it died.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch

from system.imagination.acting import LiveActor
from system.imagination.generation import GenerationConfig
from system.imagination.imagine_service import ImagineRequest, Imagination
from system.imagination.trajectory import ImaginedTrajectory

IMAGINATION_PARTS = ("heads", "prior")


class SlotsExhausted(RuntimeError):
    """Every KV-cache slot holds a live episode."""


@dataclass
class ActRequest:
    slot: int
    frame: np.ndarray              # (H, W, 3) uint8: the frame just observed
    last_action: np.ndarray        # (A,) int: the action that produced it (-1 at an episode start)
    start: bool = False            # set by admit: the first frame of the slot's episode


@dataclass
class ActResult:
    action: np.ndarray             # (A,) int64: the action to take now
    version: int                   # weights version that computed it
    frame: int                     # frames of this episode observed so far (the handle's frame index)


def world_noise_seed(world: dict) -> int:
    """The context-noise seed of an episode in `world` ({"seed", "index"}: CrafterEnv's info): a function of the
    world alone, so an episode plays the same wherever and in whichever slot it runs (arg-max actions)."""
    return int(np.random.SeedSequence([int(world["seed"]), int(world["index"])]).generate_state(1)[0] % 2**31)


def batch_kind(request) -> tuple:
    return ("act",) if isinstance(request, ActRequest) else request.kind()


def batch_key(request):
    return ("slot", request.slot) if isinstance(request, ActRequest) else ("imagine", id(request))


def batch_rows(request) -> int:
    return 1 if isinstance(request, ActRequest) else request.rows


class ActingService:
    def __init__(self, tokenizer, dynamics, policy, generation: GenerationConfig, slots: int,
                 argmax: bool = False, seed: int = 0, heads=None, prior=None):
        if slots < 1:
            raise ValueError(f"the acting service needs slots >= 1, got {slots}")
        if heads is not None and (heads.policy is not policy or prior is None):
            raise ValueError("imagination needs the agent heads whose policy acts (heads.policy) and the prior")
        self.tokenizer, self.dynamics, self.policy = tokenizer.eval(), dynamics.eval(), policy.eval()
        self.parts = {"tokenizer": tokenizer, "dynamics": dynamics, "policy": policy}
        self.imagination = None
        if heads is not None:
            self.parts.update(heads=heads.eval(), prior=prior.eval())
            self.imagination = Imagination(tokenizer, dynamics, heads, prior, generation)
        self.loaded: set[str] = set()                   # weight parts loaded so far
        self.slots, self.seed, self.version = slots, seed, 0
        device = next(dynamics.parameters()).device
        self.actor = LiveActor(dynamics, policy, generation, batch=slots, tokenizer=tokenizer, argmax=argmax,
                               generator=torch.Generator(device=device).manual_seed(seed))
        self.free = list(range(slots))                  # a heap: the lowest free slot goes first
        self.fresh: set[int] = set()                    # opened, first frame not seen yet
        self.frames: dict[int, int] = {}                # open slot -> frames admitted this episode
        self.owners: dict[int, str] = {}                # open slot -> the owner named at open_episode
        self.noise = [torch.Generator() for _ in range(slots)]
        self.episodes = 0
        self.latent_shape = (dynamics.cfg.packed_tokens, dynamics.cfg.packed_dim)

    # -- slot bookkeeping (the caller's thread) --
    def open_episode(self, seed: int | None = None, owner: str | None = None) -> int:
        if not self.free:
            raise SlotsExhausted(f"all {self.slots} KV-cache slots hold live episodes; close finished episodes "
                                 "or start the service with more slots")
        slot = heapq.heappop(self.free)
        self.episodes += 1
        self.noise[slot].manual_seed(self.seed * 1_000_003 + self.episodes if seed is None else seed)
        self.fresh.add(slot)
        self.frames[slot] = 0
        if owner is not None:
            self.owners[slot] = owner
        return slot

    def close_episode(self, slot: int) -> None:
        self._check_open(slot)
        del self.frames[slot]
        self.owners.pop(slot, None)
        self.fresh.discard(slot)
        heapq.heappush(self.free, slot)

    def close_owned(self, owner: str) -> int:
        """Closes every open slot of `owner`; returns how many."""
        slots = [slot for slot, name in self.owners.items() if name == owner]
        for slot in slots:
            self.close_episode(slot)
        return len(slots)

    def live_episodes(self) -> int:
        return len(self.frames)

    def admit(self, request: ActRequest, frame: int | None = None) -> ActRequest:
        """Checks the request against its slot (open; at the caller's frame index when given) and marks the
        episode's first frame as its start."""
        self._check_open(request.slot)
        if frame is not None and frame != self.frames[request.slot]:
            raise ValueError(f"slot {request.slot} has seen {self.frames[request.slot]} frames of its episode, "
                             f"the request says {frame}: a lost or duplicated request")
        request.start = request.slot in self.fresh
        self.fresh.discard(request.slot)
        self.frames[request.slot] += 1
        return request

    def _check_open(self, slot: int) -> None:
        if slot not in self.frames:
            raise ValueError(f"slot {slot} holds no live episode (slots 0..{self.slots - 1}; open_episode first, "
                             "and do not use a slot after close_episode)")

    # -- tensor work (the compute thread) --
    @torch.no_grad()
    def act_batch(self, requests: list[ActRequest]) -> list[ActResult]:
        """One LiveActor step over the requested slots (each slot at most once per batch)."""
        if not requests:
            return []
        rows = [r.slot for r in requests]
        if len(set(rows)) != len(rows):
            raise ValueError(f"a batch holds two frames of one episode (slots {rows})")
        starts = torch.tensor([r.start for r in requests])
        # per-episode noise: an episode's context noise does not depend on who shares its batch
        noise = torch.stack([torch.randn(self.latent_shape, generator=self.noise[b]) for b in rows])
        frames = torch.from_numpy(np.stack([r.frame for r in requests]))
        last = torch.from_numpy(np.stack([np.asarray(r.last_action) for r in requests])).long()
        actions = self.actor.step(frames, last, starts, rows=torch.tensor(rows), noise=noise).cpu().numpy()
        frame_counts = self.actor.t[torch.tensor(rows, device=self.actor.device)].tolist()
        return [ActResult(actions[i], self.version, frame_counts[i]) for i in range(len(requests))]

    def act(self, requests: list[ActRequest]) -> list[ActResult]:
        return self.act_batch([self.admit(r) for r in requests])

    def admit_imagine(self, request: ImagineRequest) -> ImagineRequest:
        """Checks an imagine request (shapes; the service imagines and holds heads and prior loaded)."""
        if self.imagination is None:
            raise ValueError("this service was built without the agent heads and prior: it cannot imagine")
        if not set(IMAGINATION_PARTS) <= self.loaded:
            raise ValueError(f"imagine before the weight parts {sorted(set(IMAGINATION_PARTS) - self.loaded)} were "
                             "loaded: the reward, value and prior heads would be untrained")
        return self.imagination.check(request)

    def imagine_batch(self, requests: list[ImagineRequest]) -> list[ImaginedTrajectory]:
        """Rollouts of every request's start contexts in one batch, stamped with the current version."""
        return self.imagination.run(requests, self.version)

    def run_batch(self, requests: list):
        """A batch of one kind (batch_kind): acts (their results), or imagine requests, handed back unfinished
        (an ImagineBatch: `advance()` per frame; a RequestBatcher answers acts between the frames)."""
        if requests and isinstance(requests[0], ImagineRequest):
            return self.imagination.start(requests, self.version)
        return self.act_batch(requests)

    def load_weights(self, version: int, states: dict, same_version: bool = False) -> int:
        """states: any of {"tokenizer", "dynamics", "policy"} (and "heads", "prior" when the service imagines)
        -> state dict. Versions only increase. "heads" holds the policy too: sent with "policy", "policy" wins.
        same_version: parts of the loaded version that were not sent with it (phase 3 adds the heads and the
        prior that phase 2's acting did not need); the version must be the loaded one."""
        if same_version and version != self.version:
            raise ValueError(f"parts for weights version {version} sent as the loaded version {self.version}")
        if not same_version and version <= self.version:
            raise ValueError(f"weights version {version} is not newer than the loaded version {self.version}")
        unknown = set(states) - set(self.parts)
        if unknown:
            raise ValueError(f"unknown weight parts {sorted(unknown)}; expected some of {list(self.parts)}")
        for name in sorted(states, key=lambda name: name == "policy"):
            self.parts[name].load_state_dict(states[name])
        self.loaded |= set(states)
        self.version = version
        return version
