"""The `eval` config section: live evaluation of the main job's policy (system/phases/live_eval.py).

episodes = 0 skips the final evaluation. With every = N > 0 the phase-3 policy also plays periodic_episodes
live episodes every N updates (phase "live_eval" in metrics.jsonl), so live returns show up along the way, not
only at the end. Each evaluation writes its first episode as a video. Episodes are played `envs` at a time,
each in its own KV-cache slot of the acting service, in worlds no training collection visits; each ends at
death or after `max_steps` steps.

backend says where the final evaluation plays (all three play the same episodes with arg-max actions and write
the same eval.json): "driver" (play_episodes with an ActingService in the driver process; the reference, and the
fastest to start), "service" (play_episodes through a world-model service actor on Ray,
system/runtime/service_eval.py), "rllib" (an RLlib EnvRunnerGroup of `envs` env runners acting through the
world-model service, system/runtime/rllib_eval.py; a lost runner is restarted and replays its worlds, at most
max_runner_restarts times in all). The evaluations during phase 3 (every) play in the driver, or with backend
"rllib" on env runners and a world-model service kept for the phase, which take the policy's weights at each
evaluation (system/runtime/rllib_eval.py's PeriodicRllibEvaluator); "service" plays them in the driver."""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("driver", "service", "rllib")


@dataclass
class EvalConfig:
    episodes: int = 20             # live episodes of the final evaluation (>= 20 for a rate worth reading); 0: off
    envs: int = 4                  # episodes played at once
    max_steps: int = 10000         # steps per episode before truncation (Crafter's own episode length: 10000)
    argmax: bool = False           # arg-max actions instead of sampling (sampling is the policy; checklist 27)
    backend: str = "driver"        # where the final evaluation plays: driver | service | rllib (see above)
    every: int = 0                 # phase-3 updates between live evaluations during phase 3; 0: the final one only
    periodic_episodes: int = 4     # episodes of each of those (logged as phase "live_eval", no eval.json)
    video_frames: int = 300        # frames of each evaluation's first episode -> videos/<phase>_policy_v<N>.mp4
    max_runner_restarts: int = 3   # backend rllib: lost env runners restarted (and their worlds replayed) in all

    def __post_init__(self) -> None:
        if self.episodes < 0:
            raise ValueError(f"eval.episodes = {self.episodes} must be >= 0 (0 skips the evaluation)")
        if self.every < 0 or self.periodic_episodes < 0 or self.video_frames < 0 or self.max_runner_restarts < 0:
            raise ValueError(f"eval.every = {self.every}, eval.periodic_episodes = {self.periodic_episodes}, "
                             f"eval.video_frames = {self.video_frames} and eval.max_runner_restarts = "
                             f"{self.max_runner_restarts} must be >= 0")
        if self.backend not in BACKENDS:
            raise ValueError(f"eval.backend = {self.backend!r}: expected one of {BACKENDS}")
        if self.envs < 1 or self.max_steps < 1:
            raise ValueError(f"eval.envs = {self.envs} and eval.max_steps = {self.max_steps} must be >= 1")
