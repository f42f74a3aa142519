"""The `eval` config section: the final live evaluation of the main job (system/phases/live_eval.py).

episodes = 0 skips it. Episodes are played `envs` at a time, each in its own KV-cache slot of the acting
service, in worlds no training collection visits; each ends at death or after `max_steps` steps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalConfig:
    episodes: int = 20             # live episodes of the final evaluation (>= 20 for a rate worth reading); 0: off
    envs: int = 4                  # episodes played at once
    max_steps: int = 10000         # steps per episode before truncation (Crafter's own episode length: 10000)
    argmax: bool = False           # arg-max actions instead of sampling (sampling is the policy; checklist 27)
    through_service: bool = False  # act through a world-model service actor on Ray (system/runtime/service_eval.py)
                                   # instead of an ActingService in the driver; same episodes with arg-max

    def __post_init__(self) -> None:
        if self.episodes < 0:
            raise ValueError(f"eval.episodes = {self.episodes} must be >= 0 (0 skips the evaluation)")
        if self.envs < 1 or self.max_steps < 1:
            raise ValueError(f"eval.envs = {self.envs} and eval.max_steps = {self.max_steps} must be >= 1")
