"""Phases 1a, 1b, 2 and 3 on Ray: trained by `runtime.learners` data-parallel learner actors instead of the driver.

    train = train_elsewhere(cfg, store, log, "dynamics", tokenizer=tokenizer)   # the phase's train_elsewhere
    step = train(run_dir / "checkpoints" / "dynamics.pt")                       # leaves the finished checkpoint

One loop for every phase: N WorldModelLearner actors (learners/world_model_learner.py) built from the phase's
learner spec (system/phases/train_*.py) and the state dicts they start from (the frozen tokenizer; phase 2: the
phase-1 dynamics), put once into Ray's object store. Each rank samples its share of every step's batch from the
run's Redis itself; gradients, loss normalisers and masked means are averaged over the group (gloo on CPU,
NCCL with one GPU per learner), so the replicas stay equal and rank 0's state is the model. The driver only
steers: up to the next log line or checkpoint per call, rank 0's metrics of the last step into metrics.jsonl
with the train steps/s, a checkpoint every `checkpoint_every` steps written by rank 0 in the driver path's
format, so the phase then evaluates, resumes and is loaded exactly as when the driver trains it.
Placement: system/runtime/placement.py (a STRICT_PACK group per GPU node, or one PACK group of CPU bundles).

With the online collection (phase 2, runtime.online_steps_per_update > 0) the service starts from rank 0's
weights, each call ends at the next runtime.publish_every-th update, and rank 0 puts the weights of that
version into the object store; the driver forwards the reference to the service (system/runtime/
online_collection.py) without fetching the tensors, and calls `updated` once per update, so the env runners'
allowance grows as in the driver path. The service lives in the placement the online collection reserved
(learner bundles + its own), which outlives the learners (phase 3 keeps acting through it).

Phase 3 (imagination) goes to the learners too unless runtime.imagination_workers > 0 imagine for it (then it
trains in the driver from their table): each rank imagines its share of the start contexts with row-keyed
randomness. With eval.every the driver fetches rank 0's policy at each evaluation step into its own heads and
runs the live evaluation (`live_eval`) there; the service of the online collection gets the policy alone.

A rank that dies takes the group down; LearnerGroup rebuilds it from the last checkpoint and the steps since
are redone (their metrics lines are rewound first, so each step is logged once; versions already sent to the
service are not sent again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ray

from learners.world_model_learner import WorldModelLearner
from system.phases.train_agent import AgentLearnerSpec
from system.phases.train_dynamics import DynamicsLearnerSpec
from system.phases.train_imagination import ImaginationLearnerSpec
from system.phases.train_tokenizer import TokenizerLearnerSpec
from system.run.weights_version import phase_version
from system.runtime.learner_group import GroupRestarted, LearnerGroup
from system.runtime.phase1_collection import runner_replay_config
from system.runtime.placement import Placement, PlacementError, PlacementPlan, cluster_node_gpus, plan_placement
from system.runtime.ray_cluster import ray_session

LEARNER_SEED_OFFSET = 101  # replay samples (and the tokenizer's MAE masks) of rank r: seed + offset + r
SERVICE_PARTS = ("dynamics", "policy")


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def cpu_state(module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


@dataclass
class LearnerPhase:
    name: str                      # the phase (metrics lines, messages)
    spec: object                   # its learner spec (system/phases/train_*.py)
    steps: int
    checkpoint_every: int
    share: str                     # what each rank samples per step, for the start line
    weights: dict = field(default_factory=dict)   # name -> module the learners start from
    service_parts: tuple = SERVICE_PARTS          # what each published version sends to the service


def learner_plan(cfg, service: bool = False) -> PlacementPlan:
    """The placement for runtime.learners ranks (and the service): GPU bundles where the cluster has GPUs and
    the run may use them (device auto or cuda), else CPU bundles."""
    gpus = cluster_node_gpus() if cfg.device != "cpu" else []
    if cfg.device == "cuda" and not any(g >= 1 for g in gpus):
        raise PlacementError(f"device=cuda with runtime.learners = {cfg.runtime.learners}, but no node of the Ray "
                             "cluster has a GPU")
    return plan_placement(cfg.runtime.learners, gpus, service)


def reserve_learner_placement(cfg, service: bool = True) -> Placement:
    """A placement for the learner ranks and the world-model service together (the online collection's)."""
    return Placement.reserve(learner_plan(cfg, service))


def tokenizer_phase(cfg, store) -> LearnerPhase:
    section, w = cfg.tokenizer, cfg.runtime.learners
    spec = TokenizerLearnerSpec(section, runner_replay_config(cfg, store), cfg.data.ingest.table,
                                seed=cfg.seed + LEARNER_SEED_OFFSET)
    return LearnerPhase("tokenizer", spec, section.train.steps, section.checkpoint_every,
                        f"{section.train.batch_size // w} sequences each per step")


def dynamics_phase(cfg, store, tokenizer, action_space) -> LearnerPhase:
    section, w = cfg.dynamics, cfg.runtime.learners
    spec = DynamicsLearnerSpec(section, cfg.tokenizer.model, action_space, runner_replay_config(cfg, store),
                               cfg.data.ingest.table, seed=cfg.seed, sample_seed=cfg.seed + LEARNER_SEED_OFFSET)
    return LearnerPhase("dynamics", spec, section.train.steps, section.checkpoint_every,
                        f"1/{w} of each batch's sequences", {"tokenizer": tokenizer})


def agent_phase(cfg, store, tokenizer, dynamics, action_space) -> LearnerPhase:
    section, w = cfg.agent, cfg.runtime.learners
    spec = AgentLearnerSpec(section, cfg.dynamics, cfg.tokenizer.model, action_space,
                            runner_replay_config(cfg, store), cfg.data.ingest.table, seed=cfg.seed + 2,
                            sample_seed=cfg.seed + LEARNER_SEED_OFFSET)
    uniform, relevant = section.train.split()
    return LearnerPhase("agent", spec, section.train.steps, section.checkpoint_every,
                        f"{uniform // w} uniform + {relevant // w} relevant sequences each per step",
                        {"tokenizer": tokenizer, "dynamics": dynamics})


def imagination_phase(cfg, store, tokenizer, dynamics, heads, action_space) -> LearnerPhase:
    section, w = cfg.imagination, cfg.runtime.learners
    spec = ImaginationLearnerSpec(section, cfg.agent, cfg.dynamics, cfg.tokenizer.model, action_space,
                                  runner_replay_config(cfg, store), cfg.data.ingest.table, seed=cfg.seed + 3,
                                  sample_seed=cfg.seed + LEARNER_SEED_OFFSET)
    return LearnerPhase("imagination", spec, section.train.steps, section.checkpoint_every,
                        f"{section.train.batch_size // w} start contexts each per step",
                        {"tokenizer": tokenizer, "dynamics": dynamics, "heads": heads}, service_parts=("policy",))


def train_elsewhere(cfg, store, log, phase: str, action_space=None, tokenizer=None, dynamics=None, heads=None,
                    online=None, live_eval=None) -> Callable[[Path], int]:
    """The phase's `train_elsewhere(path)`: its training on the learners; phases 2 and 3 also feed `online`,
    phase 3 runs `live_eval` (the driver's, on `heads` refreshed from rank 0) every eval.every steps."""
    def train(path: Path) -> int:
        if phase == "tokenizer":
            return train_on_learners(cfg, tokenizer_phase(cfg, store), path, log)
        if phase == "dynamics":
            return train_on_learners(cfg, dynamics_phase(cfg, store, tokenizer, action_space), path, log)
        if phase == "agent":
            return train_on_learners(cfg, agent_phase(cfg, store, tokenizer, dynamics, action_space), path, log,
                                     online=online)
        return train_on_learners(cfg, imagination_phase(cfg, store, tokenizer, dynamics, heads, action_space), path,
                                 log, online=online, live_eval=live_eval, heads=heads)
    if phase not in ("tokenizer", "dynamics", "agent", "imagination"):
        raise ValueError(f"phases on learner actors: tokenizer, dynamics, agent, imagination; not {phase!r}")
    if phase == "imagination" and cfg.imagination.train.full_finetune:
        raise ValueError("imagination.train.full_finetune = true with runtime.learners > 0: phase 3's full "
                         "finetuning trains in one process only (its replay terms draw from one generator)")
    return train


def publish(group: LearnerGroup, version: int, parts) -> ray.ObjectRef:
    """Rank 0 puts the weights of `version` into the object store; the driver gets only the reference."""
    return ray.get(group.learners[0].publish.remote(version, parts))[1]


def train_on_learners(cfg, phase: LearnerPhase, path: Path, log, online=None, live_eval=None, heads=None) -> int:
    """live_eval (phase 3): called with the step every eval.every steps (not the last), after rank 0's policy
    has been loaded into `heads`; polled after the other calls, finished at the end."""
    every = cfg.eval.every if live_eval is not None else 0
    w, name, steps = cfg.runtime.learners, phase.name, phase.steps
    with ray_session(num_cpus=cfg.runtime.num_cpus or None):
        weights = ray.put({k: cpu_state(m) for k, m in phase.weights.items()}) if phase.weights else None

        def make_learner(rank: int, world_size: int, options: dict):
            return WorldModelLearner.options(**options).remote(phase.spec, rank, world_size, weights)

        placement = online.placement if online is not None and online.placement is not None else None
        plan = placement.plan if placement is not None else learner_plan(cfg)
        group = LearnerGroup(make_learner, w, path, plan=plan, placement=placement)
        step = group.start()
        where = "GPU" if plan.ranks[0].gpus else "CPU"
        print(f"{name}: {w} data-parallel learner actors ({where}, {phase.share}), from step {step}", flush=True)
        started, first = time.perf_counter(), step

        def version(at: int) -> int:
            return phase_version(cfg, name, at)

        try:
            if online is not None and step < steps:  # the service starts (or goes on) from rank 0's weights
                online.begin(version(step), weights=publish(group, version(step), ("tokenizer", *SERVICE_PARTS)))
            while step < steps:
                # Up to the next log line or checkpoint (or weights version to publish), whichever comes first: a
                # restart redoes at most that much.
                ends = [steps, next_multiple(step, cfg.logging.log_every), next_multiple(step, phase.checkpoint_every)]
                if online is not None:
                    ends.append(next_multiple(step, cfg.runtime.publish_every))
                if every:
                    ends.append(next_multiple(step, every))
                calls = min(ends) - step
                try:
                    metrics = group.run(lambda ls: [learner.train.remote(calls) for learner in ls])[0]
                except GroupRestarted as restarted:
                    step = ray.get(group.learners[0].step_count.remote())
                    print(f"{name}: {restarted}; redoing from step {step}", flush=True)
                    log.rewind(name, step, cut=("live_eval",) if name == "imagination" else ())
                    continue
                step += calls
                if online is not None:  # one update each: the runners' allowance; the last one may publish
                    for done in range(step - calls + 1, step + 1):
                        ref = publish(group, version(done), phase.service_parts) \
                            if done == step and online.wants(version(done)) else None
                        online.updated(version(done), weights=ref)
                if step % cfg.logging.log_every == 0 or step == steps:
                    rate = (step - first) / (time.perf_counter() - started)
                    log.write(name, step, {**{k: v for k, v in metrics.items() if k != "step"},
                                           "train_steps_per_s": rate})
                if step % phase.checkpoint_every == 0 or step == steps:
                    group.checkpoint()
                if every and step % every == 0 and step < steps:  # the last version gets the final evaluation
                    policy = ray.get(publish(group, step, ("policy",)))["policy"]
                    heads.policy.load_state_dict(policy)
                    live_eval(step)
                elif live_eval is not None:
                    live_eval.poll()
            if live_eval is not None:
                live_eval.finish()
            if online is not None:
                online.published()  # the service holds rank 0's last version before rank 0, its owner, goes
        finally:
            group.stop()
    return step
