"""Phase 3: imagination training. The policy acts inside the frozen world model; PMPO and TD(lambda) values.

    heads = run_imagination_phase(cfg, store, tokenizer, dynamics, heads, held_out, run_dir, log, device)

In:  the phase-2 dynamics model and heads (the policy head becomes the frozen prior here), the frozen tokenizer,
     start contexts of imagination.train.context frames drawn from replay table data.ingest.table (one rollout per
     context), held_out = (frames, actions) clips from unseen worlds for the evaluation.
Each step: contexts -> latents -> ImaginationTrainer.imagine (an ImaginedTrajectory) -> train_step. With
`make_source` (the main job's runtime.imagination_workers > 0: system/runtime/imagination_workers.py), the
trajectories come from `make_source(trainer).next()` instead, and the heads go back with `publish(trainer)`
every runtime.publish_every updates; policy_lag in the metrics counts the updates since the acting policy. With
imagination.train.full_finetune the step also draws the phase-2 mixture (agent.train: batch_size, seq_len,
relevant_fraction, relevant_table, rewarded_share) for the dynamics, prior-BC and reward losses. With `online`,
env runners keep collecting with the policy as it trains (system/runtime/online_collection.py; versions
phase_version); when the imagination workers imagine through the world-model service, it is the collection's,
begun with the heads and prior, and the collection publishes the heads (with the policy in them) instead of the
policy alone. With
`live_eval` (eval.every > 0): live_eval(version) every eval.every updates, live_eval.poll() after the other
updates and live_eval.finish() at the end (system/phases/live_eval.py's InDriverLiveEval plays at once; the
RLlib evaluator plays beside training and writes an evaluation when it has finished).
With `train_elsewhere` (runtime.learners > 0, no imagination workers: system/runtime/phase_learners.py) the
learner actors train the phase (ImaginationSteps below) and leave the finished checkpoint, which is loaded and
evaluated here.
Out: checkpoints/imagination.pt ({"heads", "prior", "optimizer", "loss_norm", "step", "config": the
     imagination.train section}, plus "model" under full finetuning), metric lines of phase "imagination"
     and "imagination_eval": the imagined return (sum of predicted rewards over the horizon, alive steps only)
     of the trained policy and of the prior from the same held-out contexts and noise seed, and the KL to the prior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from system.envs.action_space import ActionSpace
from system.imagination.trajectory import ImaginedTrajectory
from system.model.agent_heads import AgentHeads
from system.model.dynamics import Dynamics
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.phases.frames import frames_to_float
from system.phases.steps import PhaseSteps, loaded, rank_store
from system.phases.rewarded_rows import draw_relevant
from system.phases.train_agent import agent_batch, replay_batch
from system.replay import ReplayConfig
from system.run.phase_record import mark_finished, phase_finished
from system.run.progress import progress
from system.run.typed_config import to_dict
from system.run.weights_version import phase_version
from system.training.checkpoint import load_checkpoint, save_checkpoint
from system.training.config import AgentSection, DynamicsSection, ImaginationSection
from system.training.data_parallel import Shard
from system.training.imagination_trainer import ImaginationTrainer


def imagined_return(traj: ImaginedTrajectory) -> float:
    """Mean over rollouts of the predicted rewards of frames 1..H, counted while the rollout is alive."""
    alive = np.cumprod(traj.continues > 0.5, axis=1)
    return float((traj.rewards[:, 1:] * alive[:, :-1]).sum(1).mean())


class ImaginationSteps(PhaseSteps):
    """Phase 3 on learner actors (system/phases/steps.py): each step, this rank's share of the start contexts
    from replay, encoded by the frozen tokenizer, imagined with row-keyed randomness (imagine_rows) and one
    ImaginationTrainer step whose means and gradients are the group's."""

    def __init__(self, trainer: ImaginationTrainer, tokenizer, store, section: ImaginationSection, table: str,
                 shard: Shard = Shard()):
        self.trainer, self.store, self.section, self.table, self.shard = trainer, store, section, table, shard
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.rows = shard.share(section.train.batch_size, "imagination.train.batch_size")
        self.config = to_dict(section.train)
        self.parts = {"tokenizer": self.tokenizer, "dynamics": trainer.model, "policy": trainer.heads.policy}
        self.device = next(trainer.model.parameters()).device
        trainer.shard = shard

    def sample(self) -> tuple:
        return (self.store.sample_contexts(self.table, self.rows, self.section.train.context),)

    def train_on(self, contexts) -> dict[str, float]:
        """contexts: a replay Batch of this rank's start contexts (B / world_size, C)."""
        model, device = self.trainer.model, self.device
        with torch.no_grad():
            z = model.pack(self.tokenizer.encode(frames_to_float(contexts.frames, device)))
        traj = self.trainer.imagine_rows(z, torch.from_numpy(contexts.actions).to(device).long(),
                                         torch.from_numpy(contexts.task_ids).to(device).long())
        return {**self.trainer.train_step(traj), "policy_lag": 0.0}


@dataclass(frozen=True)
class ImaginationLearnerSpec:
    """A learner actor's ImaginationSteps: the tokenizer, the phase-2 dynamics and heads from weights
    ("tokenizer", "dynamics", "heads"; the policy among them becomes the frozen prior), the trainer seeded like
    the driver's, start contexts from sample_seed + rank."""
    section: ImaginationSection
    agent: AgentSection
    dynamics: DynamicsSection
    tokenizer: TokenizerConfig
    action_space: ActionSpace
    replay: ReplayConfig | None = None
    table: str = "real"
    seed: int = 0
    sample_seed: int = 0

    def build(self, shard: Shard, device, weights: dict) -> ImaginationSteps:
        model = loaded(Dynamics(self.dynamics.model, self.action_space), weights["dynamics"], device)
        heads = loaded(AgentHeads(self.agent.heads, self.action_space.components, self.dynamics.model.agent_tokens,
                                  self.dynamics.model.transformer.dim), weights["heads"], device)
        trainer = ImaginationTrainer(model, heads, self.section.train, self.dynamics.generation, seed=self.seed,
                                     shortcut=self.dynamics.train.shortcut,
                                     dynamics_step=self.dynamics.train.steps + self.agent.train.steps)
        return ImaginationSteps(trainer, loaded(Tokenizer(self.tokenizer), weights["tokenizer"], device),
                                rank_store(self.replay, self.sample_seed, shard), self.section, self.table, shard)


def run_imagination_phase(cfg, store, tokenizer, model, heads, held_out, run_dir: Path, log, device,
                          make_source=None, live_eval=None, online=None,
                          train_elsewhere: Callable[[Path], object] | None = None):
    section = cfg.imagination
    agent = cfg.agent.train
    trainer = ImaginationTrainer(model, heads, section.train, cfg.dynamics.generation, seed=cfg.seed + 3,
                                 shortcut=cfg.dynamics.train.shortcut,
                                 dynamics_step=cfg.dynamics.train.steps + agent.steps)
    path = Path(run_dir) / "checkpoints" / "imagination.pt"
    elsewhere = train_elsewhere is not None and not phase_finished(run_dir, "imagination", section.train.steps)
    if elsewhere:
        train_elsewhere(path)  # leaves the finished checkpoint (and feeds `online`), loaded and evaluated below
    if path.exists():
        trainer.load_state_dict(load_checkpoint(path, device))
        if phase_finished(run_dir, "imagination", section.train.steps) and trainer.step >= section.train.steps:
            print(f"imagination: finished at step {trainer.step} ({path}), not trained or evaluated again")
            return heads
        if not elsewhere:
            print(f"imagination: resumed from {path} at step {trainer.step}")
    log.rewind("imagination", trainer.step, drop=("imagination_eval",), cut=("live_eval",))  # steps to redo
    tokenizer.eval().requires_grad_(False)
    train = section.train
    # imagination workers on the online collection's service: it imagines with the heads and prior it is sent
    shares = online is not None and online.imagines and make_source is not None
    if online is not None and trainer.step < train.steps:
        online.begin(phase_version(cfg, "imagination", trainer.step), model, trainer.heads.policy,
                     **({"heads": trainer.heads, "prior": trainer.prior} if shares else {}))
    source = make_source(trainer) if make_source is not None and trainer.step < train.steps else None
    bar = progress(range(trainer.step, train.steps), "imagination", train.steps, trainer.step)
    try:
        for step in bar:
            if source is None:  # imagine here, with the policy as it is now
                batch = store.sample_contexts(cfg.data.ingest.table, train.batch_size, train.context)
                with torch.no_grad():
                    z = model.pack(tokenizer.encode(frames_to_float(batch.frames, device)))
                actions = torch.from_numpy(batch.actions).to(device).long()
                task = torch.from_numpy(batch.task_ids).to(device).long()
                traj = trainer.imagine(z, actions, task)
            else:  # from the imagination workers, through the `imagined` table
                traj = source.next()
            replay = None
            if train.full_finetune:   # the phase-2 mixture keeps the dynamics, prior and reward losses on
                uniform_rows, relevant_rows = agent.split()
                replay = (replay_batch(store, cfg.data.ingest.table, uniform_rows, agent.seq_len, tokenizer, model,
                                       device),
                          agent_batch(draw_relevant(store, agent.relevant_table or cfg.data.ingest.table,
                                                    relevant_rows, agent.seq_len, agent.rewarded_share,
                                                    agent.rewarded_threshold), tokenizer, model, device))
            metrics = trainer.train_step(traj, replay)
            metrics["policy_lag"] = step - traj.policy_version  # updates since the policy that imagined it
            if online is not None:  # the env runners act with the policy as it trains
                online.updated(phase_version(cfg, "imagination", trainer.step),
                               dynamics=model if train.full_finetune else None,
                               **({"heads": trainer.heads} if shares else {"policy": trainer.heads.policy}))
            if source is not None and trainer.step % cfg.runtime.publish_every == 0:
                source.publish(trainer)
            bar.set_postfix(ret=f"{metrics['imagined_return']:.3f}", refresh=False)
            if (step + 1) % cfg.logging.log_every == 0 or step + 1 == train.steps:
                log.write("imagination", step + 1, {k: v for k, v in metrics.items() if k != "step"})
            if (step + 1) % section.checkpoint_every == 0:
                save_checkpoint(path, {**trainer.state_dict(), "config": to_dict(section.train)})
            if live_eval is not None and cfg.eval.every and (step + 1) % cfg.eval.every == 0 \
                    and step + 1 < train.steps:  # the last version gets the final evaluation instead
                live_eval(step + 1)
            elif live_eval is not None:
                live_eval.poll()
        if live_eval is not None:
            live_eval.finish()
    finally:
        if source is not None:
            source.close()
    bar.close()
    save_checkpoint(path, {**trainer.state_dict(), "config": to_dict(section.train)})
    evaluate(trainer, model, tokenizer, held_out, section.eval_contexts, cfg.seed, log, device)
    mark_finished(run_dir, "imagination", trainer.step)
    return heads


@torch.no_grad()
def evaluate(trainer: ImaginationTrainer, model, tokenizer, held_out, contexts: int, seed: int, log,
             device) -> dict[str, float]:
    frames, actions = held_out
    c = trainer.cfg.context
    rows = np.arange(contexts) % len(frames)
    z = model.pack(tokenizer.encode(frames_to_float(frames[rows, :c], device)))
    acts = torch.from_numpy(actions[rows, :c]).to(device).long()
    figures = {}
    for name, policy in (("policy", None), ("prior", trainer.prior)):
        trainer.generator.manual_seed(seed + 11)   # the same noise and action draws for both
        traj = trainer.imagine(z, acts, policy=policy, argmax=trainer.cfg.argmax_eval)
        figures[f"imagined_return_{name}"] = imagined_return(traj)
        if policy is None:
            h = torch.from_numpy(traj.agent[:, :-1]).to(device)
            figures["kl_prior"] = float(trainer.heads.policy.act(h).kl(trainer.prior.act(h)).mean())
    log.write("imagination_eval", trainer.step, figures)
    return figures
