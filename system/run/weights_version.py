"""Weights versions of the online collection's world-model service across phases 2 and 3 of one run.

    version = phase_version(cfg, "agent", step)         # 1 + step
    version = phase_version(cfg, "imagination", step)   # 1 + agent.train.steps + step

The service starts at version 0 and takes only newer versions, so the count goes on from phase 2 into phase 3:
1 + the training updates of phases 2 and 3 so far. (The evaluations' "policy version" is a different count:
the phase-3 updates alone.)
"""

from __future__ import annotations

PHASES = ("agent", "imagination")


def phase_version(cfg, phase: str, step: int) -> int:
    if phase not in PHASES:
        raise ValueError(f"weights versions count the updates of {PHASES}, not {phase!r}")
    return 1 + step + (cfg.agent.train.steps if phase == "imagination" else 0)
