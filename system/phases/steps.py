"""One rank's training steps of a phase: its share of each step's batch from the replay store, one trainer step.

    steps = DynamicsSteps(trainer, tokenizer, store, section, table)      # the driver: all of every batch
    steps = DynamicsLearnerSpec(...).build(Shard(rank, world), device, weights)   # a learner actor: its share
    metrics = steps.train(10)            # 10 steps on batches this rank samples itself; the last one's metrics
    metrics = steps.train_on(*batch)     # one step on a given batch (tests)
    save_checkpoint(path, steps.checkpoint())   # the phase's checkpoint format, whoever trained
    states = steps.weights(("dynamics", "policy"))   # CPU state dicts for the world-model service
    model = loaded(Dynamics(cfg, space), weights["dynamics"], device)   # a spec's build: a part the driver sent
    store = rank_store(replay_cfg, sample_seed, shard)                    # this rank's replay client

The phase loops (system/phases/train_*.py) and the learner actors (learners/world_model_learner.py) take the
same steps, so a phase trained by N data-parallel learners is the phase the driver trains, with each rank's
share of the rows (system/training/data_parallel.py). A learner spec is a frozen dataclass of config
sections, sent to the actor, whose `build(shard, device, weights)` makes the steps there; `weights` are the
frozen or initial state dicts the driver put into Ray's object store (the tokenizer, the phase-1 dynamics).
"""

from __future__ import annotations

import torch.nn as nn

from system.replay import ReplayConfig, make_store
from system.training.data_parallel import Shard


def loaded(module: nn.Module, state: dict, device) -> nn.Module:
    """`module` on `device` holding `state` (a part the driver sent: frozen, or where the phase starts)."""
    module = module.to(device)
    module.load_state_dict(state)
    return module


def rank_store(replay: ReplayConfig | None, sample_seed: int, shard: Shard):
    """This rank's replay client, sampling from sample_seed + rank (each rank draws its own rows); None without
    a replay config (tests hand batches to train_on)."""
    return make_store(replay, seed=sample_seed + shard.rank) if replay is not None else None


class PhaseSteps:
    """Subclasses set trainer, store, shard, config (the checkpoint's "config") and parts (name -> module)."""

    trainer = None
    store = None
    shard = Shard()
    config: dict = {}
    parts: dict[str, nn.Module] = {}

    @property
    def step(self) -> int:
        trainer = self.trainer  # TokenizerTrainer counts in step_count, the others in step
        return trainer.step_count if hasattr(trainer, "step_count") else trainer.step

    def sample(self) -> tuple:
        """This rank's share of the next step's batch, as train_on's arguments."""
        raise NotImplementedError

    def train_on(self, *batch) -> dict[str, float]:
        raise NotImplementedError

    def train(self, steps: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for _ in range(steps):
            metrics = self.train_on(*self.sample())
        return metrics

    def checkpoint(self) -> dict:
        return {**self.trainer.state_dict(), "config": self.config}

    def load(self, state: dict) -> None:
        self.trainer.load_state_dict(state)

    def weights(self, parts=None) -> dict[str, dict]:
        """CPU copies of the state dicts of `parts` (default: all of self.parts)."""
        names = self.parts if parts is None else parts
        return {name: {k: v.detach().cpu().clone() for k, v in self.parts[name].state_dict().items()}
                for name in names}
