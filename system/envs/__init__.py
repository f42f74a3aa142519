"""Environments behind one gymnasium adapter layer: frames (H, W, 3) uint8 out, factored int actions (A,) in.

    from system.envs import make_env
    env = make_env(EnvConfig(name="crafter", size=(64, 64), seed=0))
    frame, info = env.reset(seed=0)
    frame, reward, terminated, truncated, info = env.step(env.action_space.sample())

`crafter` runs everywhere; `minerl:<EnvName>` needs MineRL 0.4.4 installed (JDK 8, network at build time).
The action space description (action_space.py) is shared with the model heads and the dataset readers.
"""

from system.envs.action_space import (
    NO_LABEL,
    ActionComponent,
    ActionSpace,
    action_space_for_env,
    crafter_action_space,
    minecraft_action_space,
)
from system.envs.config import EnvConfig
from system.envs.make import make_env

__all__ = [
    "NO_LABEL", "ActionComponent", "ActionSpace", "EnvConfig", "action_space_for_env", "crafter_action_space",
    "make_env", "minecraft_action_space",
]
