"""The shared action space: Crafter's order, the Minecraft key set, camera, enums, validation."""

import crafter
import numpy as np
import pytest

from system.envs.action_space import (
    ActionComponent,
    ActionSpace,
    action_space_for_env,
    crafter_action_space,
    minecraft_action_space,
)

# VPT agent.py TARGET_ACTION_SPACE keys (= MineRL 1.0 human actions) without camera, as MineRL's Dict orders them.
VPT_TARGET_KEYS = ["ESC", "attack", "back", "drop", "forward", "hotbar.1", "hotbar.2", "hotbar.3", "hotbar.4",
                   "hotbar.5", "hotbar.6", "hotbar.7", "hotbar.8", "hotbar.9", "inventory", "jump", "left",
                   "pickItem", "right", "sneak", "sprint", "swapHands", "use"]


def test_crafter_space_is_crafters_action_order():
    space = crafter_action_space()
    assert len(space) == 1
    (component,) = space.components
    assert component.kind == "categorical" and component.num_classes == 17
    assert list(component.labels) == list(crafter.constants.actions)
    assert space.to_gymnasium().nvec.tolist() == [17]


def test_minecraft_space_keys_camera_and_enums():
    space = minecraft_action_space()
    assert list(space.names[:23]) == VPT_TARGET_KEYS == sorted(VPT_TARGET_KEYS)
    assert all(c.kind == "binary" and c.num_classes == 2 for c in space.components[:23])
    camera = space.component("camera")
    assert space.column("camera") == 23 and camera.num_classes == 121 and camera.noop_class == 60
    assert len(space) == 24 and minecraft_action_space("MineRLTreechop-v0") == space

    navigate = minecraft_action_space("MineRLNavigate-v0")
    assert navigate.names[24:] == ("place",) and navigate.component("place").labels == ("none", "dirt")

    obtain = minecraft_action_space("MineRLObtainDiamond-v0")
    assert obtain.names[24:] == ("place", "equip", "craft", "nearbyCraft", "nearbySmelt")
    assert [obtain.component(n).num_classes for n in obtain.names[24:]] == [7, 8, 5, 8, 3]
    assert all(obtain.component(n).labels[0] == "none" for n in obtain.names[24:])
    assert minecraft_action_space("MineRLObtainIronPickaxe-v0") == obtain
    assert obtain.noop().tolist() == [0] * 23 + [60] + [0] * 5


def test_env_names_pick_spaces():
    assert action_space_for_env("crafter") == crafter_action_space()
    assert action_space_for_env("vpt") == minecraft_action_space()
    assert len(action_space_for_env("minerl:MineRLObtainDiamond-v0")) == 29
    with pytest.raises(ValueError, match="unknown"):
        action_space_for_env("minerl:MineRLBogus-v0")
    with pytest.raises(ValueError):
        action_space_for_env("atari")


def test_validate_accepts_no_label_and_rejects_out_of_range():
    space = minecraft_action_space()
    actions = np.tile(space.noop(), (3, 1))
    actions[0] = -1
    assert space.validate(actions).dtype == np.int32
    actions[1, space.column("camera")] = 121
    with pytest.raises(ValueError, match="camera"):
        space.validate(actions)
    with pytest.raises(ValueError, match="shape"):
        space.validate(np.zeros((3, 5), np.int32))
    with pytest.raises(ValueError, match="shape"):
        space.validate(np.zeros((3, 24), np.float32))
    assert space.unlabeled(4).shape == (4, 24) and (space.unlabeled(4) == -1).all()


def test_components_are_checked():
    with pytest.raises(ValueError):
        ActionComponent("x", "binary", 3)
    with pytest.raises(ValueError):
        ActionComponent("x", "categorical", 3, labels=("a", "b"))
    with pytest.raises(ValueError):
        ActionSpace("s", (ActionComponent("x", "binary", 2), ActionComponent("x", "binary", 2)))
    with pytest.raises(ValueError):
        ActionComponent("x", "continuous", 2)


def test_projection_between_minecraft_spaces():
    from system.envs.action_space import project_actions

    navigate = minecraft_action_space("MineRLNavigate-v0")
    obtain = minecraft_action_space("MineRLObtainDiamond-v0")
    treechop = minecraft_action_space("MineRLTreechop-v0")
    actions = np.tile(navigate.noop(), (3, 1))
    actions[0] = -1
    actions[1, navigate.column("forward")] = 1
    actions[2, navigate.column("place")] = 1                     # 'dirt'
    out = project_actions(actions, navigate, obtain)
    assert out.shape == (3, 29) and (out[0] == -1).all()
    assert out[1, obtain.column("forward")] == 1 and out[1, 23] == 60
    assert obtain.component("place").labels[out[2, obtain.column("place")]] == "dirt"
    assert (out[1:, obtain.column("craft")] == 0).all()          # Navigate could not craft: 'none'
    # Back to Treechop: fine while 'place' is unused, refused when it was used.
    np.testing.assert_array_equal(project_actions(out[:2], obtain, treechop), actions[:2, :24])
    with pytest.raises(ValueError, match="'place'"):
        project_actions(out, obtain, treechop)
    with pytest.raises(ValueError, match="share no component"):
        project_actions(np.zeros((1, 1), np.int32), crafter_action_space(), treechop)
