"""Driving env runners until the replay table has received enough environment steps.

    report = collect_env_steps(runners, target_steps=2000, steps_per_call=256)
    report = drive_runners(runners, 256, wants_call=lambda report: ..., stop=event)   # open-ended, in a thread

In:  runner actor handles with a `collect(num_env_steps) -> {"env_steps", "chunks", "episodes_done", "returns"}` method that
     answers only after its chunks are stored (actors/crafter_env_runner.py), created with max_restarts so a
     killed runner comes back.
Out: CollectionReport: env steps and chunk keys (episode_id, step_offset, steps) the runners acknowledged, the
     returns of the episodes that finished, and the calls lost to a runner failure. Every runner keeps one call in flight; a call lost to a crash is not retried
     (its fragments are gone with the process; the restarted runner collects fresh episodes instead).
"""

from __future__ import annotations

import threading
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
    returns: list[float] = field(default_factory=list)  # of the finished episodes, in the order they finished
    lost_calls: int = 0
    seconds: float = 0.0

    def add(self, answer: dict) -> None:
        """One acknowledged `collect` answer."""
        self.env_steps += answer["env_steps"]
        self.episodes_done += answer["episodes_done"]
        self.chunks += [tuple(c) for c in answer["chunks"]]
        self.returns += list(answer.get("returns", []))

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / max(self.seconds, 1e-9)


def collect_env_steps(runners: Sequence, target_steps: int, steps_per_call: int,
                      on_report: Callable[[CollectionReport], None] | None = None) -> CollectionReport:
    # in-flight calls of the other runners still finish and count; no new call once the target is met
    return drive_runners(runners, steps_per_call, lambda report: report.env_steps < target_steps, on_report=on_report)


def drive_runners(runners: Sequence, steps_per_call: int, wants_call: Callable[[CollectionReport], bool],
                  stop: threading.Event | None = None, on_report: Callable[[CollectionReport], None] | None = None,
                  poll_s: float = 0.2) -> CollectionReport:
    """Keeps a call in flight on each runner while `wants_call(report)` says so. Without `stop`, returns once
    no call is wanted and every call in flight has answered; with it, idle runners wait for `wants_call` (checked
    every poll_s) until `stop` is set, then the calls in flight are waited for."""
    report, start = CollectionReport(), time.perf_counter()
    failures = [0] * len(runners)
    pending: dict = {}
    idle = list(range(len(runners)))
    while True:
        stopping = stop is None or stop.is_set()
        while idle and not (stop is not None and stop.is_set()) and wants_call(report):
            k = idle.pop(0)
            pending[runners[k].collect.remote(steps_per_call)] = k
        if not pending:
            if stopping:
                return report
            stop.wait(poll_s)
            continue
        done, _ = ray.wait(list(pending), num_returns=1, timeout=None if stop is None else poll_s)
        for ref in done:
            k = pending.pop(ref)
            idle.append(k)
            try:
                answer = ray.get(ref)
            except (ActorUnavailableError, RayActorError) as error:
                failures[k] += 1
                report.lost_calls += 1
                if failures[k] > MAX_FAILURES_PER_RUNNER:
                    raise RuntimeError(f"env runner {k} failed {failures[k]} times; last: {error}") from error
            else:
                report.add(answer)
            report.seconds = time.perf_counter() - start
            if on_report is not None:
                on_report(report)
