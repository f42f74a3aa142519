"""Keys and mouse -> actions: Crafter's run_gui mapping reaches all 17 actions, a tap acts once even between
frames, Minecraft keys and mouse look land in the right columns and camera bins, unbound input is an error."""

import ast
from pathlib import Path

import crafter
import numpy as np
import pytest

from system.envs.action_space import CRAFTER_ACTIONS, crafter_action_space, minecraft_action_space
from system.envs.camera import MINECRAFT_CAMERA
from system.play.controls import (
    DEGREES_PER_PIXEL,
    CrafterControls,
    InputState,
    MinecraftControls,
    UnknownControl,
    controls_for,
)


def crafter_action(*held, tapped=()):
    state = InputState(CrafterControls(crafter_action_space()))
    for code in held:
        state.key(code, True)
    state.tapped = list(tapped)
    return CRAFTER_ACTIONS[int(state.take_action()[0])]


def test_the_crafter_keys_are_crafters_own_run_gui_mapping():
    """Read from the installed crafter's run_gui.py (pygame.K_a -> 'move_left', ...), not restated."""
    source = (Path(crafter.__file__).parent / "run_gui.py").read_text()
    keymap = next(node.value for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "keymap")
    theirs = {key.attr.removeprefix("K_"): value.value for key, value in zip(keymap.keys, keymap.values)}
    browser_names = {"SPACE": "Space", "TAB": "Tab"}
    expected = {browser_names.get(k, f"Digit{k}" if k.isdigit() else f"Key{k.upper()}"): v for k, v in theirs.items()}
    controls = CrafterControls(crafter_action_space())
    assert {code: binding.action for code, binding in controls.by_key.items()} == expected
    assert {crafter_action(code) for code in expected} | {crafter_action()} == set(CRAFTER_ACTIONS)


def test_crafter_a_tap_wins_over_held_keys_and_acts_once():
    assert crafter_action() == "noop"
    assert crafter_action("KeyW") == "move_up"
    assert crafter_action("KeyW", "KeyA") == "move_left"         # binding order, as run_gui scans its keymap
    assert crafter_action("KeyW", tapped=["KeyT"]) == "place_table"
    state = InputState(CrafterControls(crafter_action_space()))
    state.key("Space", True)
    state.key("Space", False)                                    # pressed and released between two frames
    assert [CRAFTER_ACTIONS[int(state.take_action()[0])] for _ in range(2)] == ["do", "noop"]


def test_minecraft_keys_buttons_and_mouse_look():
    space = minecraft_action_space("MineRLObtainDiamond-v0")
    state = InputState(controls_for(space))
    for code in ("KeyW", "Space", "ShiftLeft", "Mouse0", "Digit3"):
        state.key(code, True)
    state.key("KeyR", True)
    state.key("KeyR", False)                                     # a sprint tap still counts for one frame
    state.move_mouse(20.0, -4.0)
    state.move_mouse(20.0, 0.0)                                  # movements add up until the frame
    action = state.take_action()
    space.validate(action)
    pressed = {space.names[i] for i, c in enumerate(space.components) if c.kind == "binary" and action[i] == 1}
    assert pressed == {"forward", "jump", "sneak", "attack", "hotbar.3", "sprint"}
    pitch, yaw = MINECRAFT_CAMERA.decode(action[space.column("camera")])
    turned = MINECRAFT_CAMERA.encode(np.array([0.0, 40 * DEGREES_PER_PIXEL]))     # 40 pixels right, 6 degrees
    assert yaw == pytest.approx(MINECRAFT_CAMERA.decode(turned)[1])
    assert yaw > 0 > pitch                                      # right and up
    assert all(action[space.column(e)] == 0 for e in ("place", "craft", "equip"))   # enums stay 'none'
    state.key("Space", False)
    after = state.take_action()
    assert after[space.column("jump")] == 0 and after[space.column("forward")] == 1
    assert after[space.column("sprint")] == 0 and after[space.column("camera")] == MINECRAFT_CAMERA.null_index


def test_unbound_input_is_an_error_naming_it():
    crafter_state = InputState(controls_for(crafter_action_space()))
    with pytest.raises(UnknownControl, match="'KeyZ' controls nothing in this crafter world"):
        crafter_state.key("KeyZ", True)
    with pytest.raises(UnknownControl, match="no mouse look"):
        crafter_state.move_mouse(1.0, 1.0)
    assert MinecraftControls(minecraft_action_space()).mouse_look
    legend = controls_for(minecraft_action_space()).legend()
    assert {"keys": "left click", "codes": ["Mouse0"], "action": "attack"} in legend
    assert legend[-1]["action"] == "camera"
