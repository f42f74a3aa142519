"""Phase 2: agent finetuning. Heads on the agent tokens learn BC and reward (MTP) while shortcut forcing continues.

    heads = run_agent_phase(cfg, store, tokenizer, dynamics, action_space, held_out, run_dir, log, device)

In:  the phase-1 dynamics model (trained, from checkpoints/dynamics.pt) and the frozen tokenizer; replay tables
     data.ingest.table (uniform sequences, dynamics loss) and agent.train.relevant_table (task-relevant
     sequences, BC + reward; empty = the same table); held_out = (frames, actions) clips from unseen worlds.
Each step draws the mixture (agent.train.relevant_fraction of the rows relevant, agent.train.rewarded_share of
those windows that hold a reward: system/phases/rewarded_rows.py), encodes the frames with the frozen tokenizer,
and takes one AgentTrainer step (system/training/agent_trainer.py). Task ids come from the replay chunks (-1 =
no task).
With `online` (the main job's runtime.online_steps_per_update > 0: system/runtime/online_collection.py), env
runners keep collecting into the replay with the policy and dynamics as they train: online.begin before the
first update, online.updated after each (weights version phase_version("agent", step)).
Out: checkpoints/agent.pt ({"model", "heads", "optimizer", "loss_norm", "step", "config"}), metric lines of
     phase "agent" and "agent_eval" (held-out next-action accuracy and BC NLL of the distance-0 policy).
`train_elsewhere(path)` (the main job with runtime.learners > 0: Ray learner actors,
system/runtime/phase_learners.py, which also feed the online collection) takes the training steps and leaves
the same checkpoint at `path`; the evaluation is the same either way. A step, in the driver or on a learner:
AgentSteps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from system.envs.action_space import ActionSpace
from system.model.agent_heads import AgentHeads
from system.model.dynamics import Dynamics
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.objectives.agent_losses import behaviour_cloning_loss
from system.phases.frames import frames_to_float
from system.phases.rewarded_rows import draw_relevant
from system.phases.steps import PhaseSteps, loaded, rank_store
from system.replay import ReplayConfig
from system.run.phase_record import mark_finished, phase_finished
from system.run.progress import progress
from system.run.typed_config import to_dict
from system.run.weights_version import phase_version
from system.training.agent_trainer import AgentBatch, AgentTrainer, agent_features
from system.training.batch_schedule import encode_batch
from system.training.checkpoint import load_checkpoint, save_checkpoint
from system.training.config import AgentSection, DynamicsSection
from system.training.data_parallel import Shard


def agent_batch(batch, tokenizer, model, device) -> AgentBatch:
    """A replay Batch encoded by the frozen tokenizer and packed for the dynamics."""
    z1 = model.pack(encode_batch(tokenizer, frames_to_float(batch.frames, device), 0))
    return AgentBatch(z1, torch.from_numpy(batch.actions).to(device).long(),
                      torch.from_numpy(batch.rewards).to(device).float(),
                      torch.from_numpy(batch.terminals).to(device), torch.from_numpy(batch.task_ids).to(device).long())


def replay_batch(store, table: str, rows: int, length: int, tokenizer, model, device) -> AgentBatch:
    return agent_batch(store.sample(table, rows, length), tokenizer, model, device)


class AgentSteps(PhaseSteps):
    """Each step: this rank's shares of the uniform rows (table data.ingest.table) and of the relevant rows
    (agent.train.relevant_table), encoded by the frozen tokenizer, one AgentTrainer step (system/phases/steps.py)."""

    def __init__(self, trainer: AgentTrainer, tokenizer, store, section, table: str, shard: Shard = Shard()):
        self.trainer, self.store, self.section, self.table, self.shard = trainer, store, section, table, shard
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.relevant_table = section.train.relevant_table or table
        uniform, relevant = section.train.split()
        self.rows = (shard.share(uniform, "agent uniform rows (agent.train.batch_size x (1 - relevant_fraction))"),
                     shard.share(relevant, "agent relevant rows (agent.train.batch_size x relevant_fraction)"))
        self.config = to_dict(section.heads)
        self.parts = {"tokenizer": self.tokenizer, "dynamics": trainer.model, "policy": trainer.heads.policy}
        self.device = next(trainer.model.parameters()).device
        trainer.shard = shard

    def sample(self) -> tuple:
        train = self.section.train
        return (self.store.sample(self.table, self.rows[0], train.seq_len),
                draw_relevant(self.store, self.relevant_table, self.rows[1], train.seq_len, train.rewarded_share,
                              train.rewarded_threshold))

    def train_on(self, uniform, relevant) -> dict[str, float]:
        """uniform, relevant: replay Batches of this rank's rows."""
        model, device = self.trainer.model, self.device
        return self.trainer.train_step(agent_batch(uniform, self.tokenizer, model, device),
                                       agent_batch(relevant, self.tokenizer, model, device))


@dataclass(frozen=True)
class AgentLearnerSpec:
    """A learner actor's AgentSteps: the tokenizer and the phase-1 dynamics from weights["tokenizer"] and
    weights["dynamics"], the trainer seeded like the driver's, replay samples from sample_seed + rank."""
    section: AgentSection
    dynamics: DynamicsSection
    tokenizer: TokenizerConfig
    action_space: ActionSpace
    replay: ReplayConfig | None = None
    table: str = "real"
    seed: int = 0
    sample_seed: int = 0

    def build(self, shard: Shard, device, weights: dict) -> AgentSteps:
        tokenizer = loaded(Tokenizer(self.tokenizer), weights["tokenizer"], device)
        model = loaded(Dynamics(self.dynamics.model, self.action_space), weights["dynamics"], device)
        torch.manual_seed(self.seed)  # every rank builds the same initial heads; rank 0 broadcasts them anyway
        heads = AgentHeads(self.section.heads, self.action_space.components, self.dynamics.model.agent_tokens,
                           self.dynamics.model.transformer.dim).to(device)
        trainer = AgentTrainer(model, heads, self.section.train, self.dynamics.train.shortcut, seed=self.seed,
                               dynamics_step=self.dynamics.train.steps)
        return AgentSteps(trainer, tokenizer, rank_store(self.replay, self.sample_seed, shard), self.section,
                          self.table, shard)


def run_agent_phase(cfg, store, tokenizer, model, action_space: ActionSpace, held_out, run_dir: Path, log,
                    device, online=None, train_elsewhere: Callable[[Path], object] | None = None) -> AgentHeads:
    section = cfg.agent
    heads = AgentHeads(section.heads, action_space.components, cfg.dynamics.model.agent_tokens,
                       cfg.dynamics.model.transformer.dim).to(device)
    trainer = AgentTrainer(model, heads, section.train, cfg.dynamics.train.shortcut, seed=cfg.seed + 2,
                           dynamics_step=cfg.dynamics.train.steps)
    path = Path(run_dir) / "checkpoints" / "agent.pt"
    elsewhere = train_elsewhere is not None and not phase_finished(run_dir, "agent", section.train.steps)
    if elsewhere:
        train_elsewhere(path)  # leaves the finished checkpoint (and feeds `online`), loaded and evaluated below
    if path.exists():
        trainer.load_state_dict(load_checkpoint(path, device))
        if phase_finished(run_dir, "agent", section.train.steps) and trainer.step >= section.train.steps:
            print(f"agent: finished at step {trainer.step} ({path}), not trained or evaluated again")
            model.eval()
            return heads.eval()
        if not elsewhere:
            print(f"agent: resumed from {path} at step {trainer.step}")
    log.rewind("agent", trainer.step, drop=("agent_eval",))  # lines of steps about to be redone
    steps = AgentSteps(trainer, tokenizer, store, section, cfg.data.ingest.table)

    def checkpoint() -> None:
        save_checkpoint(path, steps.checkpoint())

    total = section.train.steps
    bar = progress(range(trainer.step, total), "agent", total, trainer.step)
    if online is not None and trainer.step < total:
        online.begin(phase_version(cfg, "agent", trainer.step), model, heads.policy)
    for step in bar:
        metrics = steps.train(1)
        if online is not None:  # the env runners act with the weights as they train
            online.updated(phase_version(cfg, "agent", trainer.step), dynamics=model, policy=heads.policy)
        bar.set_postfix(bc=f"{metrics['bc_nll']:.3f}", refresh=False)
        if (step + 1) % cfg.logging.log_every == 0 or step + 1 == total:
            log.write("agent", step + 1, {k: v for k, v in metrics.items() if k != "step"})
        if (step + 1) % section.checkpoint_every == 0:
            checkpoint()
    bar.close()
    checkpoint()
    model.eval()
    heads.eval()
    evaluate(heads, model, tokenizer, held_out, section.train.context_noise, cfg.seed, log, trainer.step, device)
    mark_finished(run_dir, "agent", trainer.step)
    return heads


@torch.no_grad()
def evaluate(heads, model, tokenizer, held_out: tuple[np.ndarray, np.ndarray], context_noise: float, seed: int,
             log, step: int, device) -> dict[str, float]:
    """Next-action accuracy (arg-max of distance 0 against the scripted/collected action) on held-out clips."""
    frames, actions = held_out
    z1 = model.pack(tokenizer.encode(frames_to_float(frames, device)))
    acts = torch.from_numpy(actions).to(device).long()
    task = torch.full((z1.shape[0],), -1, dtype=torch.long, device=device)
    h = agent_features(model, z1, acts, task, context_noise, torch.Generator(device=device).manual_seed(seed + 9))
    terminals = torch.zeros(acts.shape[:2], dtype=torch.bool, device=device)
    dist = heads.policy(h)
    _, metrics = behaviour_cloning_loss(dist, acts, terminals)
    figures = {"held_out_bc_nll": metrics["bc_nll"], "held_out_next_action_accuracy": metrics["bc_accuracy"]}
    log.write("agent_eval", step, figures)
    return figures
