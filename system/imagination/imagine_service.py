"""The world-model service's imagination half: callers' start contexts rolled out together (library, no Ray).

    imagination = Imagination(tokenizer, dynamics, heads, prior, GenerationConfig())
    request = imagination.check(ImagineRequest(context, actions, horizon=16, seed=3))
    [traj] = imagination.run([request, ...], version=5)       # one ImaginedTrajectory per request, in order
    batch = imagination.start([request, ...], version=5)     # the same a piece at a time:
    while (trajs := batch.advance()) is None: ...             #   None until the last frame

ImagineRequest: context (B, T0, H, W, 3) uint8 frames (encoded here with the tokenizer, as a worker would) or
(B, T0, N_z, D_z) float32 packed latents; actions (B, T0, A) int of the context steps (-1: none); task (B,) int
or None; horizon H; seed: the request's own generator. Out per request: an ImaginedTrajectory of B rollouts of
horizon H (system/imagination/trajectory.py) stamped with `version`, the weights version that computed it.

`run` takes requests of one kind (`kind()`: frames or latents, T0, H, argmax; RequestBatcher batches by it),
concatenates their rows and rolls them out in one batch with system/imagination/imagine.py, each request's rows
drawing noise and actions from the request's generator: a request gets the rollouts it would get alone
(the same arithmetic per row; a larger batch may round differently, about 1e-6 here) and the rollouts the
phase-3 trainer imagines with `ImaginationTrainer(..., seed=seed).imagine` on the same models and contexts.
The heads give policy, reward, continuation and slow value; `prior` is the frozen phase-2 policy.
`start` hands back the batch unfinished (a request_batcher.Unfinished) so the service can answer acts between
its pieces: T0 chunks of rows encoded, the prefill, each imagined frame (each piece about one frame's work
for the batch); each batch in progress holds its own sampler (KV cache), taken from a pool of idle ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from system.imagination.generation import CachedSampler, GenerationConfig
from system.imagination.imagine import Rollout
from system.imagination.request_batcher import Unfinished
from system.imagination.trajectory import ImaginedTrajectory

SAMPLERS_KEPT = 4  # idle KV caches kept for reuse (a prefill resets them); one per rollout in progress


@dataclass
class ImagineRequest:
    context: np.ndarray            # (B, T0, H, W, 3) uint8 frames or (B, T0, N_z, D_z) float32 latents
    actions: np.ndarray            # (B, T0, A) int: the action of each context step (-1: none)
    horizon: int                   # imagined steps H
    seed: int                      # seeds the request's own generator (noise and sampled actions)
    task: np.ndarray | None = None  # (B,) int, -1: none
    argmax: bool = False           # the policy's mode instead of samples

    @property
    def rows(self) -> int:
        return int(self.context.shape[0])

    @property
    def frames(self) -> bool:
        return self.context.dtype == np.uint8

    def kind(self) -> tuple:
        """Requests of one kind roll out in one batch."""
        return ("imagine", self.frames, tuple(self.context.shape[1:]), self.horizon, self.argmax)


class Imagination:
    def __init__(self, tokenizer, dynamics, heads, prior, generation: GenerationConfig):
        self.tokenizer, self.dynamics, self.heads, self.prior = tokenizer, dynamics, heads, prior
        self.generation = generation
        self.samplers: dict[int, list[CachedSampler]] = {}   # batch rows -> idle samplers

    def check(self, request: ImagineRequest) -> ImagineRequest:
        """Shapes against the models; a wrong request fails its caller, never the batch it would join."""
        context, actions = np.asarray(request.context), np.asarray(request.actions)
        window = self.dynamics.cfg.transformer.context
        latent = (self.dynamics.cfg.packed_tokens, self.dynamics.cfg.packed_dim)
        frame = (*self.tokenizer.cfg.image_size, 3)
        if context.ndim < 3 or context.shape[0] < 1 or not 1 <= context.shape[1] <= window:
            raise ValueError(f"imagine: context {context.shape} must be (B >= 1, 1 <= T0 <= {window}, ...)")
        if context.dtype == np.uint8 and context.shape[2:] != frame:
            raise ValueError(f"imagine: frames {context.shape} must be (B, T0, {', '.join(map(str, frame))})")
        if context.dtype != np.uint8 and (context.dtype != np.float32 or context.shape[2:] != latent):
            raise ValueError(f"imagine: context {context.dtype} {context.shape} is neither uint8 frames nor float32 "
                             f"packed latents (B, T0, {latent[0]}, {latent[1]})")
        if actions.shape[:2] != context.shape[:2] or actions.ndim != 3 or actions.dtype.kind not in "iu":
            raise ValueError(f"imagine: actions {actions.dtype} {actions.shape} must be int (B, T0, A) for context "
                             f"{context.shape}")
        if request.task is not None and np.asarray(request.task).shape != (context.shape[0],):
            raise ValueError(f"imagine: task {np.asarray(request.task).shape} must be (B,) = ({context.shape[0]},)")
        if request.horizon < 1:
            raise ValueError(f"imagine: horizon = {request.horizon} must be >= 1")
        return dataclasses.replace(request, context=context, actions=actions)

    def take_sampler(self, batch: int) -> CachedSampler:
        """An idle sampler of `batch` rows (each rollout in progress holds its own KV cache)."""
        idle = self.samplers.get(batch)
        if idle:
            return idle.pop()
        param = next(self.dynamics.parameters())
        return CachedSampler(self.dynamics, self.generation, batch, param.device, param.dtype)

    def give_back(self, sampler: CachedSampler) -> None:
        """Back to the pool of idle samplers (at most SAMPLERS_KEPT: one of the earliest-seen size makes room)."""
        if sum(map(len, self.samplers.values())) >= SAMPLERS_KEPT:
            earliest = next(size for size, idle in self.samplers.items() if idle)
            self.samplers[earliest].pop(0)
        self.samplers.setdefault(sampler.batch, []).append(sampler)

    def start(self, requests: list[ImagineRequest], version: int) -> "ImagineBatch":
        """The requests' rollouts, not begun: each ImagineBatch.advance() does one piece of them."""
        kinds = {request.kind() for request in requests}
        if len(kinds) != 1:
            raise ValueError(f"one imagine batch holds requests of one kind, got {sorted(map(str, kinds))}")
        first = requests[0]
        device = next(self.dynamics.parameters()).device
        task = None
        if any(r.task is not None for r in requests):
            task = torch.from_numpy(np.concatenate([np.full(r.rows, -1) if r.task is None else np.asarray(r.task)
                                                    for r in requests])).to(device).long()
        return ImagineBatch(self, torch.from_numpy(np.concatenate([r.context for r in requests])).to(device),
                            first.frames,
                            torch.from_numpy(np.concatenate([r.actions for r in requests])).to(device).long(), task,
                            [(r.rows, torch.Generator(device=device).manual_seed(int(r.seed))) for r in requests],
                            first.horizon, first.argmax, version)

    def run(self, requests: list[ImagineRequest], version: int) -> list[ImaginedTrajectory]:
        """`start` and every piece at once."""
        batch = self.start(requests, version)
        while (trajectories := batch.advance()) is None:
            pass
        return trajectories


class ImagineBatch(Unfinished):
    """Rollouts of one batch of requests in progress, a piece per `advance()`: the start frames encoded a chunk of
    rows at a time (T0 chunks: each about one frame's work for every row), the prefill, then one imagined frame
    per piece; the last returns the per-request trajectories (None before). The sampler, taken at the prefill,
    goes back after the last frame or when a piece fails."""

    def __init__(self, imagination: Imagination, context: torch.Tensor, frames: bool, actions: torch.Tensor,
                 task: torch.Tensor | None, streams: list, horizon: int, argmax: bool, version: int):
        self.imagination, self.actions, self.task, self.streams = imagination, actions, task, streams
        self.horizon, self.argmax, self.version = horizon, argmax, version
        self.rows = [rows for rows, _ in streams]
        if frames:   # (B, T0, H, W, 3) uint8, encoded in T0 chunks of rows
            self.pending = list(context.split(-(-context.shape[0] // context.shape[1])))
            self.encoded: list[torch.Tensor] = []
        else:        # (B, T0, N_z, D_z) packed latents
            self.pending, self.encoded = [], [context]
        self.rollout: Rollout | None = None
        self.sampler = None

    @torch.no_grad()
    def advance(self) -> list[ImaginedTrajectory] | None:
        imagination = self.imagination
        try:
            if self.pending:
                chunk = self.pending.pop(0)
                self.encoded.append(imagination.dynamics.pack(imagination.tokenizer.encode(chunk.float() / 255.0)))
                return None
            if self.rollout is None:
                context = torch.cat(self.encoded)
                self.sampler = imagination.take_sampler(context.shape[0])
                self.rollout = Rollout(self.sampler, imagination.heads, imagination.prior, context, self.actions,
                                       self.task, self.horizon, self.streams, argmax=self.argmax,
                                       policy_version=self.version)
                return None
            if not self.rollout.advance():
                return None
            traj = self.rollout.trajectory()
        except BaseException:
            self._release()    # a prefill resets the sampler for its next rollout
            raise
        self._release()
        bounds = np.cumsum([0] + self.rows)
        return [split(traj, start, end) for start, end in zip(bounds[:-1], bounds[1:])]

    def _release(self) -> None:
        if self.sampler is not None:
            self.imagination.give_back(self.sampler)
            self.sampler = None


def split(traj: ImaginedTrajectory, start: int, end: int) -> ImaginedTrajectory:
    """Rows start:end of a batch of rollouts."""
    fields = {f.name: getattr(traj, f.name) for f in dataclasses.fields(traj)}
    return ImaginedTrajectory(**{name: value[start:end] if isinstance(value, np.ndarray) else value
                                 for name, value in fields.items()})
