"""Collection during phases 2 and 3 (system/runtime/online_collection.py) on a real local Ray and redis-server:
tiny models, real Crafter, env runners acting through the real world-model service."""

from __future__ import annotations

import dataclasses
import time

import pytest

from system.replay import make_store
from system.run.config import load
from system.run.typed_config import ConfigError
from system.run.weights_version import phase_version
from system.runtime.imagination_workers import imagined_source
from system.runtime.online_collection import OnlineCollection
from system.training.imagination_trainer import ImaginationTrainer
from tests.helpers.acting import DYNAMICS, GENERATION, HEADS, TOKENIZER, tiny_models

STEPS_PER_CALL = 8
RATIO = 4.0


class Log:
    def __init__(self):
        self.lines: list[tuple[str, int, dict]] = []

    def write(self, phase, step, scalars):
        self.lines.append((phase, step, scalars))


def tiny_config(redis_server, tmp_path, overrides=()):
    cfg = load(["--config", "configs/smoke.yaml", "device=cpu", "runtime.env_runners=2", "runtime.envs_per_runner=1",
                f"runtime.steps_per_call={STEPS_PER_CALL}", f"runtime.online_steps_per_update={RATIO}",
                "runtime.publish_every=2", "runtime.report_every_s=0", "data.collect.max_episode_steps=6",
                f"replay.url=redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0",
                f"run_dir={tmp_path / 'run'}", *overrides])
    return dataclasses.replace(
        cfg, tokenizer=dataclasses.replace(cfg.tokenizer, model=TOKENIZER,
                                          train=dataclasses.replace(cfg.tokenizer.train, seq_len=8)),
        dynamics=dataclasses.replace(cfg.dynamics, model=DYNAMICS, generation=GENERATION),
        agent=dataclasses.replace(cfg.agent, heads=HEADS, train=dataclasses.replace(cfg.agent.train, seq_len=4)),
        imagination=dataclasses.replace(cfg.imagination,
                                        train=dataclasses.replace(cfg.imagination.train, context=4)))


def wait_for(condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.redis
def test_runners_collect_as_the_updates_allow_take_each_version_and_share_the_service_with_imagination(
        local_ray, redis_server, tmp_path):
    """Phase 2: no env step before the first update, the allowance met and not overrun, every publish_every-th
    version sent. Phase 3 with imagination workers imagining on the service (runtime.imagine_on = service): the
    collection's service is theirs too (one service); phase 3 adds the heads and prior to the version phase 2
    sent last, the collection publishes the heads, the workers' trajectories carry phase-3 update counts, and
    acts and frame-by-frame rollouts share the batcher. At the end every acknowledged step is stored."""
    cfg = tiny_config(redis_server, tmp_path, [
        "runtime.imagination_workers=2", "runtime.imagine_on=service", "agent.train.steps=2",
        "imagination.train.batch_size=2", "imagination.train.horizon=3",
        "replay.tables.imagined.min_size_to_sample=6", "replay.tables.imagined.error_buffer=12"])
    store = make_store(cfg.replay)
    tokenizer, dynamics, heads = tiny_models(seed=0)
    log = Log()
    online = OnlineCollection(cfg, store, tokenizer, log)
    assert online.imagines
    source = None
    try:
        online.begin(phase_version(cfg, "agent", 0), dynamics, heads.policy)
        time.sleep(3.0)
        assert online.report.env_steps == 0  # no update yet: nothing is allowed

        for step in (1, 2):  # 2 updates allow 8 env steps; publish_every 2 sends version 3 (not 2)
            online.updated(phase_version(cfg, "agent", step), dynamics=dynamics, policy=heads.policy)
        wait_for(lambda: online.report.env_steps >= 2 * RATIO)
        time.sleep(3.0)  # had it kept collecting, more calls would have answered by now
        # at most one call per runner past the allowance
        assert online.report.env_steps <= 2 * RATIO + cfg.runtime.env_runners * STEPS_PER_CALL
        assert online.published() == phase_version(cfg, "agent", 2)
        assert local_ray.get(online.service.stats.remote())["version"] == phase_version(cfg, "agent", 2)

        # phase 3 begins at the version phase 2 sent last: no new version, the heads and prior join it
        trainer = ImaginationTrainer(dynamics, heads, cfg.imagination.train, GENERATION, seed=0)
        online.begin(phase_version(cfg, "imagination", 0), dynamics, heads.policy, heads=trainer.heads,
                     prior=trainer.prior)
        source = imagined_source(cfg, store, tokenizer, trainer, 2, online=online)
        assert source.service is online.service and source.shared
        versions = []
        for _ in range(4):  # versions 5 and 7 sent (every 2nd counts on from phase 2)
            traj = source.next()
            versions.append(traj.policy_version)
            trainer.train_step(traj)
            online.updated(phase_version(cfg, "imagination", trainer.step), heads=trainer.heads)
            source.publish(trainer)
        assert online.published() == phase_version(cfg, "imagination", 4)
        for _ in range(40):   # the workers' calls after the last swap imagine with policy version 4
            versions.append(source.next().policy_version)
            if versions[-1] == 4:
                break
        stats = local_ray.get(online.service.stats.remote())
        wait_for(lambda: online.report.env_steps >= 6 * RATIO)
        service = online.service
    finally:
        if source is not None:
            source.close()
        report = online.close()

    # update counts of the versions sent, not service versions (the table samples old and new trajectories)
    assert versions[0] == 0 and versions[-1] == 4 and set(versions) <= {0, 2, 4}, versions
    assert stats["version"] == phase_version(cfg, "imagination", 4)
    assert stats["by_kind"]["act"]["requests"] > 0 and stats["by_kind"]["imagine"]["requests"] >= len(set(versions))
    # a piece at a time (encoding chunks, the prefill, each frame), acts answered between them
    assert stats["resumed_pieces"] >= (cfg.imagination.train.horizon + 2) * stats["by_kind"]["imagine"]["batches"]

    def service_gone() -> bool:  # ray.kill is asynchronous: a call sent right after it may still be answered
        try:
            local_ray.get(service.stats.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - ActorDiedError or a timeout: the actor is gone
            return True
        return False

    wait_for(service_gone, timeout_s=30.0)

    assert report.lost_calls == 0 and report.env_steps >= 6 * RATIO
    stored = store.stats(cfg.data.ingest.table).steps
    store.close()
    assert stored == report.env_steps + len({episode for episode, _, _ in report.chunks})  # frames = steps + 1
    assert all(episode.startswith("crafter/rllib/") for episode, _, _ in report.chunks)
    assert report.episodes_done == len(report.returns) > 0  # episodes of 6 steps finished
    online_lines = [scalars for phase, _, scalars in log.lines if phase == "online"]
    assert online_lines and online_lines[-1]["env_steps"] == report.env_steps


def test_online_collection_needs_env_runners():
    with pytest.raises(ConfigError, match="online_steps_per_update.*env_runners"):
        load(["--config", "configs/smoke.yaml", "runtime.online_steps_per_update=2"])
