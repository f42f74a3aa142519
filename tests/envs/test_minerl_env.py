"""MineRL v0.4.4 adapter and Minecraft action conversion.

MineRL cannot be installed here (JDK 8 + gradle downloads), so it is faked ONLY at the env boundary: `FakeMineRL`
declares exactly the action and observation spaces MineRL 0.4.4 declares for each env (written down below as
data from minerl/herobraine/env_specs/*.py at tag v0.4.4, independently of system/envs/minerl_spaces.py), checks
that every action it receives lies in those spaces, and returns pov frames whose content we control.
"""

import numpy as np
import pytest

from system.envs import EnvConfig, make_env
from system.envs.action_space import minecraft_action_space
from system.envs.camera import MINECRAFT_CAMERA
from system.envs.minecraft_actions import dicts_to_model_actions, model_action_to_dict
from system.envs.minerl_env import MineRLEnv, MineRLNotInstalledError, make_raw_minerl_env


# ---- MineRL 0.4.4's declared spaces, as data --------------------------------------------------------------------
class Discrete:
    def __init__(self, n):
        self.n = n

    def contains(self, x):
        return isinstance(x, (int, np.integer)) and 0 <= x < self.n


class Box:
    def __init__(self, low, high, shape, dtype):
        self.low, self.high, self.shape, self.dtype = np.full(shape, low), np.full(shape, high), shape, dtype

    def contains(self, x):
        x = np.asarray(x)
        return x.shape == self.shape and x.dtype == self.dtype and np.all(x >= self.low) and np.all(x <= self.high)


class Enum:
    def __init__(self, *values):
        self.values = np.array(sorted(values))   # MineRL's spaces.Enum sorts its values

    def contains(self, x):
        return isinstance(x, str) and x in self.values


class Dict:
    def __init__(self, spaces):
        self.spaces = dict(sorted(spaces.items()))   # gym.spaces.Dict sorts keys


KEYS = ["forward", "back", "left", "right", "jump", "sneak", "sprint", "attack"]
CAMERA = Box(-180.0, 180.0, (2,), np.float32)
POV = Box(0, 255, (64, 64, 3), np.uint8)
OBTAIN_ENUMS = {
    "place": Enum("none", "dirt", "stone", "cobblestone", "crafting_table", "furnace", "torch"),
    "equip": Enum("none", "air", "wooden_axe", "wooden_pickaxe", "stone_axe", "stone_pickaxe", "iron_axe",
                  "iron_pickaxe"),
    "craft": Enum("none", "torch", "stick", "planks", "crafting_table"),
    "nearbyCraft": Enum("none", "wooden_axe", "wooden_pickaxe", "stone_axe", "stone_pickaxe", "iron_axe",
                        "iron_pickaxe", "furnace"),
    "nearbySmelt": Enum("none", "iron_ingot", "coal"),
}
OBTAIN_INVENTORY = ["dirt", "coal", "torch", "log", "planks", "stick", "crafting_table", "wooden_axe",
                    "wooden_pickaxe", "stone", "cobblestone", "furnace", "stone_axe", "stone_pickaxe", "iron_ore",
                    "iron_ingot", "iron_axe", "iron_pickaxe"]


def declared_spaces(env_name):
    actions = {key: Discrete(2) for key in KEYS} | {"camera": CAMERA}
    observations = {"pov": POV}
    if env_name.startswith("MineRLNavigate"):
        actions["place"] = Enum("none", "dirt")
        observations["compass"] = Dict({"angle": Box(-180.0, 180.0, (), np.float32)})
        observations["inventory"] = Dict({"dirt": Box(0, 2304, (), np.int32)})
    elif env_name.startswith("MineRLObtain"):
        actions |= OBTAIN_ENUMS
        observations["inventory"] = Dict({item: Box(0, 2304, (), np.int32) for item in OBTAIN_INVENTORY})
    return Dict(actions), Dict(observations)


class FakeMineRL:
    """Old-gym-API env with MineRL's declared spaces; pov pixel [0, 0, 0] carries the step count."""

    def __init__(self, env_name, done_at=None, time_limit=None):
        self.action_space, self.observation_space = declared_spaces(env_name)
        self.done_at, self.time_limit = done_at, time_limit
        self.received, self.seeds, self.steps = [], [], 0

    def seed(self, seed):
        self.seeds.append(seed)

    def _obs(self):
        pov = np.zeros((64, 64, 3), np.uint8)
        pov[..., 0] = self.steps
        obs = {"pov": pov}
        if "inventory" in self.observation_space.spaces:
            obs["inventory"] = {item: 0 for item in self.observation_space.spaces["inventory"].spaces}
        return obs

    def reset(self):
        self.steps = 0
        return self._obs()

    def step(self, action):
        assert set(action) == set(self.action_space.spaces), f"action keys {sorted(action)}"
        for key, space in self.action_space.spaces.items():
            assert space.contains(action[key]), f"{key}={action[key]!r} not in MineRL's space"
        self.received.append(action)
        self.steps += 1
        info = {}
        done = self.steps == self.done_at
        if self.steps == self.time_limit:
            done, info["TimeLimit.truncated"] = True, True
        return self._obs(), 1.0, done, info

    def close(self):
        pass


ENV_NAMES = ["MineRLTreechop-v0", "MineRLNavigate-v0", "MineRLObtainIronPickaxe-v0", "MineRLObtainDiamond-v0"]


# ---- conversions ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_name", ENV_NAMES)
def test_model_actions_become_actions_in_minerls_declared_space_and_back(env_name):
    space = minecraft_action_space(env_name)
    raw = FakeMineRL(env_name)
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = np.array([rng.integers(0, n) for n in space.nvec], dtype=np.int32)
        action[rng.random(len(space)) < 0.1] = -1
        minerl_action = model_action_to_dict(action, space, env_keys=KEYS)
        raw.step(minerl_action)   # asserts the dict lies in MineRL's declared action space
        # Back to the model: keys MineRL v0 has and every categorical survive; -1 became the no-op.
        back = dicts_to_model_actions({k: np.array([v]) for k, v in minerl_action.items()}, space)[0]
        expected = np.where(action == -1, space.noop(), action)
        v0_columns = [space.column(k) for k in KEYS] + list(range(23, len(space)))
        np.testing.assert_array_equal(back[v0_columns], expected[v0_columns])
        missing = [c for c in range(23) if c not in v0_columns]
        assert (back[missing] == 0).all()


def test_dict_to_model_by_hand():
    space = minecraft_action_space("MineRLObtainDiamond-v0")
    actions = {
        "forward": np.array([1, 0]), "attack": np.array([0, 1]),
        "camera": np.array([[0.0, 0.0], [-3.3, 12.0]], np.float32),
        "craft": np.array(["none", "planks"]), "place": np.array(["torch", "none"]),
    }
    out = dicts_to_model_actions(actions, space)
    assert out.shape == (2, 29) and out.dtype == np.int32
    assert out[0, space.column("forward")] == 1 and out[1, space.column("attack")] == 1
    assert out[0, 23] == 60 and out[1, 23] == 2 * 11 + 10    # pitch -3.3 -> bin 2 (-3.22); yaw 12 -> bin 10
    assert out[1, space.column("craft")] == 3 and out[0, space.column("place")] == 6
    assert out[0, space.column("equip")] == 0                 # absent enum: 'none'
    with pytest.raises(ValueError, match="craft"):
        dicts_to_model_actions({"craft": np.array(["diamond"])}, space)
    with pytest.raises(ValueError, match="forward"):
        dicts_to_model_actions({"forward": np.array([2])}, space)
    with pytest.raises(ValueError, match="not in the action space"):
        dicts_to_model_actions({"place": np.array(["dirt"])}, minecraft_action_space())


def test_camera_goes_to_minerl_as_bin_centre_degrees():
    space = minecraft_action_space("MineRLTreechop-v0")
    action = space.noop()
    action[23] = 8 * 11 + 0
    out = model_action_to_dict(action, space, env_keys=KEYS)
    assert out["camera"].dtype == np.float32
    np.testing.assert_allclose(out["camera"], [3.22, -10.0], atol=0.006)
    np.testing.assert_array_equal(MINECRAFT_CAMERA.encode(out["camera"]), 88)
    assert "ESC" not in out and "hotbar.1" not in out and out["forward"] == 0


# ---- the adapter ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_name", ENV_NAMES)
def test_adapter_steps_the_raw_env(env_name):
    raw = FakeMineRL(env_name)
    env = MineRLEnv(env_name, size=(32, 32), seed=5, raw_env_factory=lambda name: raw)
    frame, info = env.reset()
    assert raw.seeds == [5] and frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    action = env.action_space.sample()
    frame, reward, terminated, truncated, info = env.step(action)
    assert frame[0, 0, 0] == 1 and reward == 1.0 and not terminated and not truncated
    assert "pov" not in info["minerl_obs"]
    assert ("inventory" in info["minerl_obs"]) == (env_name != "MineRLTreechop-v0")
    env.reset()
    assert raw.seeds == [5]   # later unseeded resets continue MineRL's own sequence
    env.reset(seed=9)
    assert raw.seeds == [5, 9]


def test_done_is_terminated_and_time_limit_is_truncated():
    raw = FakeMineRL("MineRLTreechop-v0", done_at=3)
    env = MineRLEnv("MineRLTreechop-v0", raw_env_factory=lambda name: raw)
    env.reset()
    results = [env.step(env.action_spec.noop())[2:4] for _ in range(3)]
    assert results == [(False, False), (False, False), (True, False)]

    raw = FakeMineRL("MineRLTreechop-v0", time_limit=2)
    env = MineRLEnv("MineRLTreechop-v0", raw_env_factory=lambda name: raw)
    env.reset()
    assert [env.step(env.action_spec.noop())[2:4] for _ in range(2)] == [(False, False), (False, True)]

    env = MineRLEnv("MineRLTreechop-v0", max_episode_steps=1, raw_env_factory=lambda name: FakeMineRL(name))
    env.reset()
    assert env.step(env.action_spec.noop())[2:4] == (False, True)


def test_a_different_minerl_version_is_refused():
    def with_esc(name):
        raw = FakeMineRL(name)
        raw.action_space.spaces["ESC"] = Discrete(2)
        return raw

    with pytest.raises(ValueError, match="action keys"):
        MineRLEnv("MineRLTreechop-v0", raw_env_factory=with_esc)

    def other_place(name):
        raw = FakeMineRL(name)
        raw.action_space.spaces["place"] = Enum("none", "dirt", "sand")
        return raw

    with pytest.raises(ValueError, match="place"):
        MineRLEnv("MineRLNavigate-v0", raw_env_factory=other_place)


def test_without_minerl_the_error_says_how_to_install():
    try:
        import minerl  # noqa: F401
        pytest.skip("minerl is installed here")
    except ImportError:
        pass
    with pytest.raises(MineRLNotInstalledError, match="JDK 8"):
        make_raw_minerl_env("MineRLTreechop-v0")
    with pytest.raises(MineRLNotInstalledError, match="network|gradle"):
        make_env(EnvConfig(name="minerl:MineRLTreechop-v0"))
    with pytest.raises(ValueError, match="unknown MineRL"):
        make_env(EnvConfig(name="minerl:MineRLBogus-v0"))
