"""The factored action space shared by model heads, dataset readers and environment adapters.

An action is an int array with one column per component, `(A,)` for one step or `(T, A)` for an episode:
binary components hold 0/1, categorical components a class index, and -1 means "no label" (unlabeled video and
step 0 of every episode; the dynamics model gives it a learned "no action" embedding). The same column and index
mean the same action in every reader and adapter, so a dataset and a live environment can train one model.

    space = minecraft_action_space("MineRLTreechop-v0")
    space.names            # ("ESC", "attack", ..., "use", "camera")
    space.nvec             # (2, 2, ..., 2, 121)
    space.column("camera") # 23
    space.noop()           # (A,) int32: keys released, camera centred (class 60), enums 'none'

Crafter: one categorical component of 17 classes in crafter's own action order. Minecraft: the 23 binary keys of
MineRL 1.0 / VPT (`TARGET_ACTION_SPACE` in VPT's agent.py, alphabetical as MineRL's gym Dict sorts them), a
121-way camera (11x11 μ-law bins, see camera.py), then for MineRL v0 envs that have them the enum components
place/equip/craft/nearbyCraft/nearbySmelt with 'none' as class 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from system.envs.camera import MINECRAFT_CAMERA
from system.envs.minerl_spaces import ENUM_ACTION_NAMES, minerl_v0_spec

NO_LABEL = -1

# crafter.constants.actions (data.yaml order); tests check this against the installed package.
CRAFTER_ACTIONS: tuple[str, ...] = (
    "noop", "move_left", "move_right", "move_up", "move_down", "do", "sleep", "place_stone", "place_table",
    "place_furnace", "place_plant", "make_wood_pickaxe", "make_stone_pickaxe", "make_iron_pickaxe",
    "make_wood_sword", "make_stone_sword", "make_iron_sword",
)

# MineRL 1.0 / VPT keyboard and mouse-button actions, each Discrete(2).
MINECRAFT_KEYS: tuple[str, ...] = (
    "ESC", "attack", "back", "drop", "forward",
    "hotbar.1", "hotbar.2", "hotbar.3", "hotbar.4", "hotbar.5", "hotbar.6", "hotbar.7", "hotbar.8", "hotbar.9",
    "inventory", "jump", "left", "pickItem", "right", "sneak", "sprint", "swapHands", "use",
)


@dataclass(frozen=True)
class ActionComponent:
    name: str
    kind: Literal["binary", "categorical"]
    num_classes: int
    labels: tuple[str, ...] = ()   # class names of a categorical component, when it has them
    noop_class: int = 0            # the class meaning "do nothing" (the camera's centre bin, an enum's 'none')

    def __post_init__(self):
        if self.kind not in ("binary", "categorical"):
            raise ValueError(f"action component {self.name!r}: kind must be 'binary' or 'categorical'")
        if self.kind == "binary" and self.num_classes != 2:
            raise ValueError(f"action component {self.name!r}: a binary component has 2 classes")
        if self.num_classes < 2:
            raise ValueError(f"action component {self.name!r}: needs at least 2 classes")
        if self.labels and len(self.labels) != self.num_classes:
            raise ValueError(f"action component {self.name!r}: {len(self.labels)} labels for "
                             f"{self.num_classes} classes")
        if not 0 <= self.noop_class < self.num_classes:
            raise ValueError(f"action component {self.name!r}: noop_class out of range")


@dataclass(frozen=True)
class ActionSpace:
    name: str
    components: tuple[ActionComponent, ...]

    def __post_init__(self):
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"action space {self.name!r}: duplicate component names")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)

    @property
    def nvec(self) -> tuple[int, ...]:
        return tuple(c.num_classes for c in self.components)

    def __len__(self) -> int:
        return len(self.components)

    def column(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"action space {self.name!r} has no component {name!r}") from None

    def component(self, name: str) -> ActionComponent:
        return self.components[self.column(name)]

    def noop(self) -> np.ndarray:
        return np.array([c.noop_class for c in self.components], dtype=np.int32)

    def unlabeled(self, steps: int) -> np.ndarray:
        return np.full((steps, len(self)), NO_LABEL, dtype=np.int32)

    def validate(self, actions: np.ndarray, where: str = "actions") -> np.ndarray:
        """Checks shape (..., A), integer dtype, and every entry in [-1, num_classes); returns int32."""
        actions = np.asarray(actions)
        if actions.shape[-1:] != (len(self),) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"{where}: expected integer actions of shape (..., {len(self)}) for {self.name!r}, "
                             f"got {actions.dtype} {actions.shape}")
        high = np.array(self.nvec)
        bad = (actions < NO_LABEL) | (actions >= high)
        if bad.any():
            column = int(np.argwhere(bad)[0][-1])
            raise ValueError(f"{where}: component {self.names[column]!r} has values outside "
                             f"[-1, {high[column]}): {np.unique(actions[..., column][bad[..., column]])[:5]}")
        return actions.astype(np.int32, copy=False)

    def to_gymnasium(self):
        import gymnasium
        return gymnasium.spaces.MultiDiscrete(np.array(self.nvec, dtype=np.int64))


def crafter_action_space() -> ActionSpace:
    return ActionSpace("crafter", (ActionComponent("action", "categorical", len(CRAFTER_ACTIONS), CRAFTER_ACTIONS),))


def camera_component() -> ActionComponent:
    return ActionComponent("camera", "categorical", MINECRAFT_CAMERA.num_classes,
                           noop_class=MINECRAFT_CAMERA.null_index)


def minecraft_action_space(env_name: str | None = None) -> ActionSpace:
    """The Minecraft space: 23 keys + camera, plus the enum actions MineRL v0 env `env_name` has.

    `env_name=None` (VPT data, MineRL 1.0) or MineRLTreechop-v0 give keys + camera only.
    """
    components = [ActionComponent(key, "binary", 2) for key in MINECRAFT_KEYS] + [camera_component()]
    name = "minecraft"
    if env_name is not None:
        spec = minerl_v0_spec(env_name)
        for enum in ENUM_ACTION_NAMES:
            if enum in spec.enums:
                values = spec.enums[enum]
                components.append(ActionComponent(enum, "categorical", len(values), values))
        if spec.enums:
            # Obtain* envs share their enum sets, so one name covers IronPickaxe and Diamond.
            name = "minecraft+navigate" if spec.family == "Navigate" else "minecraft+obtain"
    return ActionSpace(name, tuple(components))


def action_space_for_env(env_name: str) -> ActionSpace:
    """The space of an EnvConfig name: 'crafter', 'minerl:<MineRL v0 env>' or 'vpt'."""
    if env_name == "crafter":
        return crafter_action_space()
    if env_name == "vpt":
        return minecraft_action_space()
    if env_name.startswith("minerl:"):
        return minecraft_action_space(env_name.split(":", 1)[1])
    raise ValueError(f"unknown environment {env_name!r}: expected 'crafter', 'vpt' or 'minerl:<EnvName>'")


def project_actions(actions: np.ndarray, source: ActionSpace, target: ActionSpace) -> np.ndarray:
    """(T, len(source)) actions -> (T, len(target)), matching components by name.

    Lets episodes recorded in one Minecraft space (Treechop's keys + camera, Navigate's 2-value `place`) land in a
    run's wider space (the Obtain* enums): a shared categorical is mapped by its class labels, a component the
    source lacks is its no-op (the source could not use it), and steps unlabeled in every column stay -1.
    Raises ValueError when a source component the target lacks was actually used (that would lose actions).
    """
    actions = source.validate(actions, where=f"actions in {source.name!r}")
    if source == target:
        return actions
    shared = [name for name in target.names if name in source.names]
    if not shared:
        raise ValueError(f"action spaces {source.name!r} and {target.name!r} share no component")
    for column, component in enumerate(source.components):
        if component.name not in target.names:
            values = actions[:, column]
            if np.any((values != NO_LABEL) & (values != component.noop_class)):
                raise ValueError(f"actions use {component.name!r}, which the action space {target.name!r} lacks")
    unlabeled = np.all(actions == NO_LABEL, axis=1)
    out = np.tile(target.noop(), (len(actions), 1))
    for column, component in enumerate(target.components):
        if component.name not in source.names:
            continue
        origin = source.component(component.name)
        values = actions[:, source.column(component.name)]
        if origin.labels and component.labels:
            lookup = np.full(origin.num_classes, -2, np.int64)
            for index, label in enumerate(origin.labels):
                if label in component.labels:
                    lookup[index] = component.labels.index(label)
            mapped = np.where(values == NO_LABEL, NO_LABEL, lookup[np.maximum(values, 0)])
            if np.any(mapped == -2):
                missing = sorted({origin.labels[v] for v in values[mapped == -2]})
                raise ValueError(f"{component.name!r} values {missing} do not exist in {target.name!r}")
            out[:, column] = mapped
        elif (origin.kind, origin.num_classes) == (component.kind, component.num_classes):
            out[:, column] = values
        else:
            raise ValueError(f"component {component.name!r} differs between {source.name!r} and {target.name!r}")
    out[unlabeled] = NO_LABEL
    return out
