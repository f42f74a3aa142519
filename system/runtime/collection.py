"""Driving env runners until the replay table has received enough environment steps.

    report = collect_env_steps(runners, target_steps=2000, steps_per_call=256)

In:  runner actor handles with a `collect(num_env_steps) -> {"env_steps", "chunks", "episodes_done"}` method that
     answers only after its chunks are stored (actors/crafter_env_runner.py), created with max_restarts so a
     killed runner comes back.
Out: CollectionReport: env steps and chunk keys (episode_id, step_offset, steps) the runners acknowledged, and the
     calls lost to a runner failure. Every runner keeps one call in flight; a call lost to a crash is not retried
     (its fragments are gone with the process; the restarted runner collects fresh episodes instead).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

MAX_FAILURES_PER_RUNNER = 10  # beyond this a runner counts as broken, not unlucky


@dataclass
class CollectionReport:
    env_steps: int = 0
    episodes_done: int = 0
    chunks: list[tuple[str, int, int]] = field(default_factory=list)
    lost_calls: int = 0
    seconds: float = 0.0

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / max(self.seconds, 1e-9)


def collect_env_steps(runners: Sequence, target_steps: int, steps_per_call: int,
                      on_report: Callable[[CollectionReport], None] | None = None) -> CollectionReport:
    report, start = CollectionReport(), time.perf_counter()
    failures = [0] * len(runners)
    pending = {runners[k].collect.remote(steps_per_call): k for k in range(len(runners))}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        k = pending.pop(ref)
        try:
            answer = ray.get(ref)
        except (ActorUnavailableError, RayActorError) as error:
            failures[k] += 1
            report.lost_calls += 1
            if failures[k] > MAX_FAILURES_PER_RUNNER:
                raise RuntimeError(f"env runner {k} failed {failures[k]} times; last: {error}") from error
        else:
            report.env_steps += answer["env_steps"]
            report.episodes_done += answer["episodes_done"]
            report.chunks += [tuple(c) for c in answer["chunks"]]
        report.seconds = time.perf_counter() - start
        if on_report is not None:
            on_report(report)
        # in-flight calls of the other runners still finish and count; no new call once the target is met
        if report.env_steps < target_steps:
            pending[runners[k].collect.remote(steps_per_call)] = k
    return report
