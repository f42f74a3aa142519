"""The main job's `--help` text: configs in configs/, the override syntax, and the config's top-level keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from system.run.config import Config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def usage() -> str:
    configs = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    sections = [f.name for f in dataclasses.fields(Config)]
    return "\n".join([
        "usage: python -m system.main [--config PATH] [dotted.key=value ...]",
        "",
        f"configs (in {CONFIGS}): {', '.join(configs)}",
        "overrides: dotted.key=value, e.g. tokenizer.train.steps=50 run_dir=runs/try runtime.env_runners=2",
        f"top-level keys: {', '.join(sections)}",
        "usage: python -m system.main --resume RUN_DIR [dotted.key=value ...]   (the run's own config.yaml)",
        "  run_dir=PATH resumes a run there; runtime.env_runners=N collects phase-1 data through N Ray env runners",
        "  runtime.online_steps_per_update=R keeps those runners collecting through phases 2-3 with the policy",
        "  runtime.imagination_workers=N imagines phase-3 rollouts in N Ray workers (rate-limited `imagined` table);",
        "    runtime.imagine_on=service has them roll out through one world-model service actor instead",
        "  eval.episodes=N plays N live episodes with the final policy into eval.json (0 skips; eval.max_steps caps them)",
        "    eval.backend=driver|service|rllib: in the driver, through the world-model service, or an RLlib",
        "    EnvRunnerGroup of eval.envs runners acting through the service (the same episodes with eval.argmax)",
        "  under `ray job submit` the driver joins that cluster (RAY_ADDRESS); RAY_AUTH_MODE=token keeps auth on",
    ])
