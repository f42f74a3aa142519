"""Imagination workers on a real local Ray and a real redis-server (CPU, tiny models): trajectories arrive in
the `imagined` table, decode, carry the policy version that acted, stay within the rate limiter's slack of
the learner, are what the driver would have imagined itself, and train the learner as an in-process rollout;
the same with the workers rolling out through the world-model service (runtime.imagine_on = service)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from actors.imagination_worker import WorkerSpec
from actors.world_model_service import ServiceSpec, WorldModelService
from system.imagination.trajectory import decode_trajectory
from system.replay import make_store
from system.replay.chunk import Chunk
from system.replay.config import ReplayConfig, TableConfig, TablesConfig
from system.replay.trajectory_table import trajectory_table
from system.runtime.imagination_workers import ImaginedSource
from system.training.imagination_trainer import ImaginationTrainConfig, ImaginationTrainer
from system.training.imagination_worker import ImaginationWorker
from tests.helpers.acting import DYNAMICS, GENERATION, HEADS, SPACE, TOKENIZER, tiny_models

pytestmark = pytest.mark.redis

B, C, H = 2, 2, 3
N = B * H  # imagined steps per trajectory
TRAIN = ImaginationTrainConfig(batch_size=B, context=C, horizon=H)
UPDATES = 6


def fill_real_table(store, frames: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 17, (len(frames), 1)).astype(np.int32)
    actions[0] = -1
    half = len(frames) // 2
    chunks = [Chunk(frames[s:e], actions[s:e], np.zeros(e - s, np.float32), np.zeros(e - s, bool), "ep0", s,
                    is_last=e == len(frames), action_classes=(17,)) for s, e in ((0, half), (half, len(frames)))]
    store.add_many("real", chunks)


def test_workers_imagine_what_the_driver_would_and_the_learner_trains_on_it(local_ray, redis_server,
                                                                             crafter_frames):
    url = f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0"
    tables = TablesConfig(imagined=TableConfig(samples_per_insert=1.0, min_size_to_sample=N, error_buffer=N))
    # generous timeouts: on a loaded 2-core box the workers' first trajectories took over 60 s (actors start slowly)
    cfg = ReplayConfig(backend="redis", url=url, tables=tables, block_timeout_s=240.0)
    store = make_store(cfg, seed=0)
    fill_real_table(store, crafter_frames(0, 24))
    tokenizer, dynamics, heads = tiny_models(seed=0)
    trainer = ImaginationTrainer(dynamics, heads, TRAIN, GENERATION, seed=0)
    start = copy.deepcopy((dynamics, heads))
    specs = [WorkerSpec(TOKENIZER, DYNAMICS, HEADS, SPACE, TRAIN, GENERATION, seed=seed) for seed in (11, 12)]
    source = ImaginedSource(trajectory_table(store, seed=0), specs, cfg, tokenizer, trainer, timeout=240.0)
    received = []
    try:
        for _ in range(UPDATES):
            traj = source.next()
            assert (traj.batch, traj.horizon, traj.agent.shape[2:]) == (B, H, (1, DYNAMICS.transformer.dim))
            assert 0 <= traj.policy_version <= trainer.step  # never a policy the learner has not published
            received.append(traj)
            trainer.train_step(traj)
            source.publish(trainer)
        stats = source.table.stats()
    finally:
        source.close()
    assert stats["sampled"] == UPDATES * N and 0 <= stats["inserted"] - stats["sampled"] <= 2 * N  # the limiter
    # Later rollouts acted with published heads (version 0 is the heads the workers started with). How far the
    # versions get in 6 updates depends on timing (the table may run 2 trajectories ahead): CI saw 1, not 2.
    assert max(t.policy_version for t in received) >= 1

    # the first stored trajectory is a worker's first rollout (version 0): the driver, with that worker's seed
    # for contexts and noise, imagines the same one
    first = decode_trajectory(source.table.get(0))
    assert first.policy_version == 0
    candidates = []
    for spec in specs:
        local_dynamics, local_heads = copy.deepcopy(start)
        local = ImaginationWorker(tokenizer, local_dynamics, local_heads, TRAIN, GENERATION,
                                  make_store(cfg, seed=spec.seed), None, "real", seed=spec.seed)
        candidates.append(local.rollout())
    [match] = [t for t in candidates if np.array_equal(t.actions, first.actions)]
    for name in ("agent", "log_probs", "prior_log_probs", "rewards", "values"):
        np.testing.assert_allclose(getattr(match, name), getattr(first, name), atol=1e-5, err_msg=name)

    # one learner update from the worker's trajectory equals the update from the driver's own rollout
    updated = []
    for traj in (first, match):
        learner_dynamics, learner_heads = copy.deepcopy(start)
        learner = ImaginationTrainer(learner_dynamics, learner_heads, TRAIN, GENERATION, seed=0)
        learner.train_step(traj)
        updated.append(learner_heads.state_dict())
    for key in updated[0]:
        torch.testing.assert_close(updated[0][key], updated[1][key], atol=1e-5, rtol=1e-4, msg=key)


def test_workers_imagining_through_the_service_store_the_rollouts_the_driver_would(local_ray, redis_server,
                                                                                   crafter_frames):
    url = f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0"
    tables = TablesConfig(imagined=TableConfig(samples_per_insert=1.0, min_size_to_sample=N, error_buffer=N))
    # generous timeouts: on a loaded 2-core box the workers' first trajectories took over 60 s (actors start slowly)
    cfg = ReplayConfig(backend="redis", url=url, tables=tables, block_timeout_s=240.0)
    store = make_store(cfg, seed=0)
    fill_real_table(store, crafter_frames(0, 24))
    tokenizer, dynamics, heads = tiny_models(seed=0)
    trainer = ImaginationTrainer(dynamics, heads, TRAIN, GENERATION, seed=0)
    start = copy.deepcopy((dynamics, heads))
    service = WorldModelService.remote(ServiceSpec(TOKENIZER, DYNAMICS, HEADS, SPACE, GENERATION, slots=1,
                                                   max_batch=2 * B, max_wait_ms=20.0, threads=1))
    specs = [WorkerSpec(TOKENIZER, DYNAMICS, HEADS, SPACE, TRAIN, GENERATION, seed=seed, service=service)
             for seed in (11, 12)]
    source = ImaginedSource(trajectory_table(store, seed=0), specs, cfg, tokenizer, trainer, timeout=240.0,
                            service=service)
    received = []
    try:
        for _ in range(4):
            traj = source.next()
            assert 0 <= traj.policy_version <= trainer.step  # update counts, not the service's versions
            received.append(traj)
            trainer.train_step(traj)
            source.publish(trainer)
        for _ in range(8):   # the table may run ahead of the swaps; calls sent after them imagine with version >= 1
            if max(t.policy_version for t in received) >= 1:
                break
            received.append(source.next())
        stats = local_ray.get(service.stats.remote())
    finally:
        source.close()
    assert stats["by_kind"]["imagine"]["requests"] >= 4 and stats["version"] >= 4   # rolled out there; heads sent
    assert max(t.policy_version for t in received) >= 1

    # the first stored trajectory is a worker's first request (version 0): the driver's trainer, seeded with that
    # request's seed, imagines the same rollouts from the same start contexts
    first = decode_trajectory(source.table.get(0))
    assert first.policy_version == 0
    candidates = []
    for spec in specs:
        contexts = make_store(cfg, seed=spec.seed).sample_contexts("real", B, C)
        seed = int(np.random.SeedSequence([spec.seed, 0]).generate_state(1)[0] % 2**31)
        local_dynamics, local_heads = copy.deepcopy(start)
        local = ImaginationTrainer(local_dynamics, local_heads, TRAIN, GENERATION, seed=seed)
        with torch.no_grad():
            z = local_dynamics.pack(tokenizer.encode(torch.from_numpy(contexts.frames).float() / 255.0))
        candidates.append(local.imagine(z, torch.from_numpy(contexts.actions).long(),
                                        torch.from_numpy(contexts.task_ids).long()))
    [match] = [t for t in candidates if np.array_equal(t.actions, first.actions)]
    for name in ("agent", "log_probs", "prior_log_probs", "rewards", "values"):
        np.testing.assert_allclose(getattr(match, name), getattr(first, name), atol=1e-5, err_msg=name)


def test_workers_with_gpus_ask_ray_for_them_and_hold_their_models_there():
    """runtime.imagination_worker_gpus: each worker holding its own models gets that many GPUs from Ray and
    builds its models on "cuda" (no GPU here: the placement is checked, not run); 0 keeps them on the CPU."""
    from system.run.config import load
    from system.runtime.imagination_workers import worker_placement

    assert worker_placement(load(["runtime.imagination_workers=2"])) == ("cpu", {})
    assert worker_placement(load(["runtime.imagination_workers=2", "runtime.imagination_worker_gpus=0.5"])) == \
        ("cuda", {"num_gpus": 0.5})
