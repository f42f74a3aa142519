"""Keyboard and mouse -> the run's factored action (A,) int32, one action per generated frame.

    controls = controls_for(space)                  # Crafter's 17 actions or the Minecraft keys + camera
    state = InputState(controls)
    state.key("KeyW", down=True); state.move_mouse(12.0, -3.0)     # browser KeyboardEvent.code, mouse pixels
    action = state.take_action()                    # (A,) int32; consumes taps and the mouse movement since
    controls.legend()                               # [{"keys": "W", "codes": ["KeyW"], "action": "move_up"}, ...]

Key names are the browser's `KeyboardEvent.code` values ("KeyW", "Space", "Digit1"); mouse buttons are "Mouse0"
(left), "Mouse1" (middle) and "Mouse2" (right). A key bound to nothing is an error that names it (UnknownControl).

Crafter (one categorical of 17): crafter's own run_gui.py mapping, WASD move, Space do, Tab sleep, T table,
R stone, F furnace, P plant, 1/2/3 wood/stone/iron pickaxe, 4/5/6 swords. As there, a key pressed since the
last frame wins (the first one pressed), else the first held key in binding order, else noop: a tap shorter
than one frame still acts once.
Minecraft (23 binary keys + the 121-way camera + enums): WASD forward/left/back/right, Space jump, Shift
sneak, Ctrl or R sprint (Ctrl+W closes a browser tab, hence R), E inventory, Q drop, F swap hands, 1-9 hotbar,
left click attack, right click use, middle click pick item; a key is pressed in a frame when it is held or was
tapped since the last frame. Mouse look: the movement since the last frame, DEGREES_PER_PIXEL degrees a pixel,
[pitch, yaw] = [dy, dx] (down and right positive, as MineRL's camera), becomes one μ-law camera class
(system/envs/camera.py; beyond ±10 degrees a frame it saturates). The enum actions of the Obtain/Navigate envs
(place, craft, ...) have no keys and stay 'none'.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from system.envs.action_space import CRAFTER_ACTIONS, ActionSpace
from system.envs.camera import MINECRAFT_CAMERA

DEGREES_PER_PIXEL = 0.15  # about Minecraft's default mouse sensitivity


class UnknownControl(ValueError):
    """A key or mouse input this world's controls do not bind."""


@dataclass(frozen=True)
class Binding:
    keys: tuple[str, ...]    # KeyboardEvent.code values (or MouseN), any of which triggers it
    label: str               # how the legend names the keys
    action: str              # a Crafter action name, or a Minecraft key component


CRAFTER_BINDINGS = (
    Binding(("KeyA",), "A", "move_left"), Binding(("KeyD",), "D", "move_right"),
    Binding(("KeyW",), "W", "move_up"), Binding(("KeyS",), "S", "move_down"),
    Binding(("Space",), "Space", "do"), Binding(("Tab",), "Tab", "sleep"),
    Binding(("KeyR",), "R", "place_stone"), Binding(("KeyT",), "T", "place_table"),
    Binding(("KeyF",), "F", "place_furnace"), Binding(("KeyP",), "P", "place_plant"),
    Binding(("Digit1",), "1", "make_wood_pickaxe"), Binding(("Digit2",), "2", "make_stone_pickaxe"),
    Binding(("Digit3",), "3", "make_iron_pickaxe"), Binding(("Digit4",), "4", "make_wood_sword"),
    Binding(("Digit5",), "5", "make_stone_sword"), Binding(("Digit6",), "6", "make_iron_sword"),
)

MINECRAFT_BINDINGS = (
    Binding(("KeyW",), "W", "forward"), Binding(("KeyA",), "A", "left"),
    Binding(("KeyS",), "S", "back"), Binding(("KeyD",), "D", "right"),
    Binding(("Space",), "Space", "jump"), Binding(("ShiftLeft", "ShiftRight"), "Shift", "sneak"),
    Binding(("ControlLeft", "ControlRight", "KeyR"), "Ctrl or R", "sprint"),
    Binding(("Mouse0",), "left click", "attack"), Binding(("Mouse2",), "right click", "use"),
    Binding(("Mouse1",), "middle click", "pickItem"),
    Binding(("KeyE",), "E", "inventory"), Binding(("KeyQ",), "Q", "drop"), Binding(("KeyF",), "F", "swapHands"),
    *(Binding((f"Digit{n}",), str(n), f"hotbar.{n}") for n in range(1, 10)),
)


class Controls(ABC):
    """The bindings of one action space and how held and tapped keys become an action."""

    def __init__(self, space: ActionSpace, bindings: tuple[Binding, ...], mouse_look: bool):
        self.space, self.bindings, self.mouse_look = space, bindings, mouse_look
        self.by_key = {key: binding for binding in bindings for key in binding.keys}

    def check_key(self, code: str) -> None:
        if code not in self.by_key:
            raise UnknownControl(f"key {code!r} controls nothing in this {self.space.name} world (bound: "
                                 f"{', '.join(self.by_key)})")

    def legend(self) -> list[dict]:
        return [{"keys": binding.label, "codes": list(binding.keys), "action": binding.action}
                for binding in self.bindings]

    @abstractmethod
    def action(self, held: list[str], tapped: list[str], mouse: tuple[float, float]) -> np.ndarray:
        """held and tapped key codes (bound ones), the mouse movement in pixels -> (A,) int32."""


class CrafterControls(Controls):
    def __init__(self, space: ActionSpace):
        super().__init__(space, CRAFTER_BINDINGS, mouse_look=False)

    def action(self, held: list[str], tapped: list[str], mouse: tuple[float, float]) -> np.ndarray:
        chosen = next((self.by_key[code] for code in tapped), None)
        if chosen is None:
            chosen = next((b for b in self.bindings if any(code in held for code in b.keys)), None)
        name = chosen.action if chosen is not None else "noop"
        return np.array([CRAFTER_ACTIONS.index(name)], dtype=np.int32)


class MinecraftControls(Controls):
    def __init__(self, space: ActionSpace, degrees_per_pixel: float = DEGREES_PER_PIXEL):
        bindings = tuple(b for b in MINECRAFT_BINDINGS if b.action in space.names)
        super().__init__(space, bindings, mouse_look=True)
        self.degrees_per_pixel = degrees_per_pixel
        self.camera = space.column("camera")

    def legend(self) -> list[dict]:
        return [*super().legend(), {"keys": "mouse (click the frame to capture it)", "codes": [], "action": "camera"}]

    def action(self, held: list[str], tapped: list[str], mouse: tuple[float, float]) -> np.ndarray:
        out = self.space.noop()
        for code in (*held, *tapped):
            out[self.space.column(self.by_key[code].action)] = 1
        dx, dy = mouse
        out[self.camera] = MINECRAFT_CAMERA.encode(np.array([dy, dx]) * self.degrees_per_pixel)
        return out


def controls_for(space: ActionSpace) -> Controls:
    if space.name == "crafter":
        return CrafterControls(space)
    if "camera" in space.names:
        return MinecraftControls(space)
    raise ValueError(f"no keyboard controls for the action space {space.name!r}")


class InputState:
    """One player's keys and mouse between two frames."""

    def __init__(self, controls: Controls):
        self.controls = controls
        self.held: list[str] = []       # in press order
        self.tapped: list[str] = []     # pressed since the last frame, in order
        self.mouse = [0.0, 0.0]         # pixels moved since the last frame

    def key(self, code: str, down: bool) -> None:
        self.controls.check_key(code)
        if down:
            if code not in self.held:
                self.held.append(code)
                self.tapped.append(code)
        elif code in self.held:
            self.held.remove(code)

    def move_mouse(self, dx: float, dy: float) -> None:
        if not self.controls.mouse_look:
            raise UnknownControl(f"this {self.controls.space.name} world has no mouse look")
        self.mouse[0] += dx
        self.mouse[1] += dy

    def release_all(self) -> None:
        self.held.clear()

    def take_action(self) -> np.ndarray:
        action = self.controls.action(self.held, self.tapped, (self.mouse[0], self.mouse[1]))
        self.tapped.clear()
        self.mouse = [0.0, 0.0]
        return action
