"""Phase 1a on Ray: the tokenizer trained by `runtime.learners` data-parallel learner actors instead of the driver.

    step = train_tokenizer_on_learners(cfg, store, run_dir / "checkpoints" / "tokenizer.pt", log)

Each learner (learners/world_model_learner.py) samples its share (tokenizer.train.batch_size / learners) of
every step's batch from the run's Redis itself; gradients are averaged over the group (gloo on CPU, NCCL with
one GPU per learner), so the replicas stay equal and rank 0's state is the model. The driver only steers:
`log_every` steps per call, rank 0's metrics of the last step into metrics.jsonl, a checkpoint every
`checkpoint_every` steps in the driver path's format (tokenizer.pt: model, optimizer, loss_norm, step, config),
so the phase then evaluates, resumes and is loaded exactly as when the driver trains it. A rank that dies
takes the group down; LearnerGroup rebuilds it from the last checkpoint and the steps since are redone (their
metrics lines are rewound first, so each step is logged once).
"""

from __future__ import annotations

import time
from pathlib import Path

import ray
import torch

from learners.world_model_learner import TokenizerLearner
from system.runtime.learner_group import GroupRestarted, LearnerGroup
from system.runtime.phase1_collection import runner_replay_config
from system.runtime.ray_cluster import ray_session
from system.run.typed_config import to_dict

LEARNER_SEED_OFFSET = 101  # learners draw MAE masks from seed + offset + 1 + rank (the driver path: seed)


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def train_tokenizer_on_learners(cfg, store, path: Path, log) -> int:
    section, learners = cfg.tokenizer, cfg.runtime.learners
    steps, table = section.train.steps, cfg.data.ingest.table
    replay_cfg = runner_replay_config(cfg, store)
    gpus = 1 if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else 0
    extra = {"config": to_dict(section.model)}

    def make_learner(rank: int, world_size: int, placement):
        return TokenizerLearner.options(num_cpus=1, num_gpus=gpus, scheduling_strategy=placement).remote(
            section, replay_cfg, rank=rank, world_size=world_size, seed=cfg.seed + LEARNER_SEED_OFFSET, table=table)

    with ray_session(num_cpus=cfg.runtime.num_cpus or None):
        # One bundle per rank, all placed or none (gang scheduling), packed onto as few nodes as possible.
        group = LearnerGroup(make_learner, learners, path, bundle={"CPU": 1, "GPU": gpus} if gpus else {"CPU": 1})
        step = group.start()
        print(f"tokenizer: {learners} data-parallel learner actors ({'GPU' if gpus else 'CPU'}, "
              f"{section.train.batch_size // learners} sequences each per step), from step {step}", flush=True)
        started, first = time.perf_counter(), step
        try:
            while step < steps:
                # Up to the next log line or checkpoint, whichever comes first: a restart redoes at most that much.
                calls = min(steps, next_multiple(step, cfg.logging.log_every),
                            next_multiple(step, section.checkpoint_every)) - step
                try:
                    metrics = group.run(lambda ls: [learner.train.remote(calls) for learner in ls])[0]
                except GroupRestarted as restarted:
                    step = ray.get(group.learners[0].step_count.remote())
                    print(f"tokenizer: {restarted}; redoing from step {step}", flush=True)
                    log.rewind("tokenizer", step)
                    continue
                step += calls
                if step % cfg.logging.log_every == 0 or step == steps:
                    rate = (step - first) / (time.perf_counter() - started)
                    log.write("tokenizer", step, {**metrics, "train_steps_per_s": rate})
                if step % section.checkpoint_every == 0 or step == steps:
                    group.checkpoint(extra)
        finally:
            group.stop()
    return step
