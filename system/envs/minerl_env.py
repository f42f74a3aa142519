"""MineRL v0.4.4 environments (old gym API) as gymnasium environments with the project's factored action.

    env = MineRLEnv("MineRLObtainDiamond-v0", size=(64, 64), seed=0)
    frame, info = env.reset()                         # frame: (H, W, 3) uint8 from MineRL's `pov`
    frame, reward, terminated, truncated, info = env.step(action)   # action: (A,) int, minecraft_action_space(name)

The action is converted to MineRL's dict (8 keys, `camera` [pitch, yaw] degrees from the μ-law class, and the
enum strings the env has); keys MineRL v0 lacks (ESC, hotbar, ...) are not sent. Other observations
(inventory, compass, equipped items) go to `info["minerl_obs"]`. MineRL's `done` after its time limit (gym's
TimeLimit sets `info["TimeLimit.truncated"]`) or after `max_episode_steps` becomes `truncated`; any other
`done` (task solved, player died) is `terminated`.

`minerl` needs JDK 8 and network access at build time; without it, construction raises MineRLNotInstalledError
saying how to install it. Tests pass `raw_env_factory` to drive the adapter with a stand-in that declares
MineRL's spaces; the adapter checks the raw env's declared spaces against minerl_spaces.py either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

from system.envs.action_space import minecraft_action_space
from system.envs.minecraft_actions import model_action_to_dict
from system.envs.minerl_spaces import minerl_v0_spec
from system.envs.resize import resize_frames

INSTALL_HINT = (
    "MineRL 0.4.4 is not installed. It builds a Minecraft mod from source: install a JDK 8 (set JAVA_HOME), make "
    "sure the machine can reach services.gradle.org, jitpack.io and maven.minecraftforge.net, then run "
    "`pip install 'dreamer4-ray[minerl]'` (minerl==0.4.4, old gym API). Headless machines also need xvfb-run. "
    "Or use the Docker image in deploy/, which has it prebuilt. Crafter ('crafter') needs none of this."
)


class MineRLNotInstalledError(ImportError):
    pass


def make_raw_minerl_env(env_name: str):
    """gym.make(env_name) from an installed MineRL 0.4.4 (old gym API)."""
    try:
        import gym
        import minerl  # noqa: F401  (registers the MineRL envs with gym)
    except ImportError as error:
        raise MineRLNotInstalledError(f"{INSTALL_HINT} (import failed: {error})") from None
    return gym.make(env_name)


class MineRLEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, env_name: str, size: tuple[int, int] = (64, 64), seed: int = 0, max_episode_steps: int = 0,
                 raw_env_factory: Callable[[str], Any] | None = None):
        self.env_name = env_name
        self.spec_v0 = minerl_v0_spec(env_name)
        self.size = (int(size[0]), int(size[1]))
        self.max_episode_steps = max_episode_steps or self.spec_v0.max_episode_steps
        self.action_spec = minecraft_action_space(env_name)
        self.action_space = self.action_spec.to_gymnasium()
        self.observation_space = gymnasium.spaces.Box(0, 255, (*self.size, 3), np.uint8)
        self._raw = (raw_env_factory or make_raw_minerl_env)(env_name)
        check_declared_spaces(self._raw, env_name)
        self._seed: int | None = int(seed)
        self._steps = 0
        self._frame: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._seed = int(seed)
        if self._seed is not None:
            self._raw.seed(self._seed)   # MineRL 0.4.4 applies the seed at the next reset
            self._seed = None            # later resets continue the env's own sequence
        obs = self._raw.reset()
        self._steps = 0
        return self._convert_obs(obs)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        minerl_action = model_action_to_dict(action, self.action_spec, env_keys=self.spec_v0.keys)
        obs, reward, done, raw_info = self._raw.step(minerl_action)
        self._steps += 1
        frame, info = self._convert_obs(obs)
        info["raw_info"] = raw_info
        truncated = bool(raw_info.get("TimeLimit.truncated", False)) or self._steps >= self.max_episode_steps
        terminated = bool(done) and not truncated
        return frame, float(reward), terminated, truncated, info

    def _convert_obs(self, obs: dict) -> tuple[np.ndarray, dict[str, Any]]:
        pov = np.asarray(obs["pov"])
        if pov.shape != self.spec_v0.pov_shape or pov.dtype != np.uint8:
            raise ValueError(f"{self.env_name}: pov must be uint8 {self.spec_v0.pov_shape}, "
                             f"got {pov.dtype} {pov.shape}")
        self._frame = resize_frames(pov, self.size)
        return self._frame, {"minerl_obs": {key: value for key, value in obs.items() if key != "pov"}}

    def render(self) -> np.ndarray | None:
        return self._frame

    def close(self) -> None:
        self._raw.close()


def check_declared_spaces(raw_env, env_name: str) -> None:
    """Raises ValueError if the raw env's action/observation spaces differ from MineRL 0.4.4's for env_name.

    Duck-typed on gym spaces: Dict has `.spaces`, Discrete `.n`, Box `.shape`/`.low`/`.high`, MineRL's Enum
    `.values`. A mismatch means another MineRL version, whose indices would not mean the same actions.
    """
    spec = minerl_v0_spec(env_name)
    actions = dict(raw_env.action_space.spaces)
    expected = set(spec.keys) | {"camera"} | set(spec.enums)
    if set(actions) != expected:
        raise ValueError(f"{env_name}: action keys {sorted(actions)} differ from MineRL 0.4.4's {sorted(expected)}")
    for key in spec.keys:
        if getattr(actions[key], "n", None) != 2:
            raise ValueError(f"{env_name}: action {key!r} should be Discrete(2), got {actions[key]}")
    camera = actions["camera"]
    if tuple(camera.shape) != (2,) or not (np.all(np.asarray(camera.low) == -spec.camera_limit)
                                           and np.all(np.asarray(camera.high) == spec.camera_limit)):
        raise ValueError(f"{env_name}: action 'camera' should be Box(-180, 180, (2,)), got {camera}")
    for key, values in spec.enums.items():
        declared = getattr(actions[key], "values", None)
        if declared is None or set(map(str, declared)) != set(values):
            raise ValueError(f"{env_name}: enum action {key!r} values {declared} differ from {values}")
    pov = raw_env.observation_space.spaces["pov"]
    if tuple(pov.shape) != spec.pov_shape:
        raise ValueError(f"{env_name}: observation 'pov' should have shape {spec.pov_shape}, got {pov.shape}")
