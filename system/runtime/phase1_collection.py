"""Phase-1 data through Ray env runners: start the runners, collect until the table has the target, stop them.

    collect_with_env_runners(cfg, store, console)    # cfg.runtime.env_runners > 0; store: the run's Redis store

The runners write straight into the run's redis-server (they get its URL and password as actor arguments,
never through the config files); the driver prints one line every runtime.report_every_s seconds with env
steps, env steps/s and the replay size. Idempotent on resume: a table already holding the target is left as is.
"""

from __future__ import annotations

import dataclasses
import time

import ray

from actors.crafter_env_runner import CrafterEnvRunner, EnvRunnerSpec
from system.replay import ReplayError
from system.runtime.collection import collect_env_steps
from system.runtime.placement import runner_options
from system.runtime.ray_cluster import ray_session


def runner_replay_config(cfg, store):
    """The run's replay settings with a URL that actors on this host can use (the driver's own server)."""
    server = getattr(store, "server", None)
    if cfg.replay.url:
        return cfg.replay
    if server is None:
        raise ReplayError("runtime.env_runners > 0 needs a Redis replay store the runners can reach "
                          "(replay.backend=redis or auto with redis-server installed, or replay.url)")
    return dataclasses.replace(cfg.replay, url=f"redis://:{server.password}@127.0.0.1:{server.port}/0")


def collect_with_env_runners(cfg, store, console) -> None:
    rt, table = cfg.runtime, cfg.data.ingest.table
    target = rt.collect_env_steps or cfg.data.collect.episodes * cfg.data.collect.max_episode_steps
    stored = store.stats(table).steps
    if stored >= target:
        console.print(f"collect: table {table!r} already holds {stored} steps (target {target})")
        return
    replay_cfg = runner_replay_config(cfg, store)
    last = [0.0]

    def report_line(report) -> None:
        if time.perf_counter() - last[0] >= rt.report_every_s:
            last[0] = time.perf_counter()
            print(f"collect: {stored + report.env_steps}/{target} env steps, {report.env_steps_per_s:.0f} env "
                  f"steps/s, replay {store.stats(table).steps} steps, lost calls {report.lost_calls}", flush=True)

    with ray_session(num_cpus=rt.num_cpus or None) as session:
        console.print(f"ray: {'started a local instance' if session.local else 'joined the cluster'} at "
                      f"{session.address}")
        runners = [CrafterEnvRunner.options(**runner_options(max_restarts=-1)).remote(
            EnvRunnerSpec(index=k, table=table, envs=rt.envs_per_runner, size=tuple(cfg.data.ingest.size),
                          max_episode_steps=cfg.data.collect.max_episode_steps, seed=cfg.data.collect.seed),
            replay_cfg) for k in range(rt.env_runners)]
        try:
            report = collect_env_steps(runners, target - stored, rt.steps_per_call, on_report=report_line)
        finally:
            for runner in runners:
                ray.kill(runner)
    console.print(f"collect: {report.env_steps} env steps from {rt.env_runners} env runners in "
                  f"{report.seconds:.1f} s ({report.env_steps_per_s:.0f} env steps/s), {report.episodes_done} "
                  f"episodes finished, replay {store.stats(table).steps} steps in table {table!r}")
