"""MineRL v0.4.4 environment facts, written down as data: names, keys, enum values, episode limits.

Read from minerllabs/minerl at tag v0.4.4 (`herobraine/env_specs/{simple_embodiment,treechop_specs,
navigate_specs,obtain_specs}.py`, `herobraine/hero/handlers/agent/actions/*.py`). MineRL itself cannot be
installed on machines without JDK 8 and gradle/maven access, so the adapter and the dataset reader rely on this
table instead of importing `minerl`.

    spec = minerl_v0_spec("MineRLObtainDiamond-v0")
    spec.keys            # the 8 Discrete(2) keyboard actions
    spec.enums           # {"place": ("none", "dirt", ...), ...} in declaration order
    spec.max_episode_steps
"""

from __future__ import annotations

from dataclasses import dataclass

# SIMPLE_KEYBOARD_ACTION in simple_embodiment.py: every v0 env has these, each Discrete(2).
MINERL_V0_KEYS: tuple[str, ...] = ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack")

# Enum actions in declaration order ('none' first). MineRL's own `spaces.Enum` sorts its values for its integer
# indices; this project keeps declaration order so class 0 is always the no-op 'none'. The env is driven with the
# string values, so MineRL's internal index order never matters.
_NAVIGATE_ENUMS = {"place": ("none", "dirt")}
_OBTAIN_ENUMS = {
    "place": ("none", "dirt", "stone", "cobblestone", "crafting_table", "furnace", "torch"),
    "equip": ("none", "air", "wooden_axe", "wooden_pickaxe", "stone_axe", "stone_pickaxe", "iron_axe", "iron_pickaxe"),
    "craft": ("none", "torch", "stick", "planks", "crafting_table"),
    "nearbyCraft": ("none", "wooden_axe", "wooden_pickaxe", "stone_axe", "stone_pickaxe", "iron_axe", "iron_pickaxe",
                    "furnace"),
    "nearbySmelt": ("none", "iron_ingot", "coal"),
}
ENUM_ACTION_NAMES: tuple[str, ...] = ("place", "equip", "craft", "nearbyCraft", "nearbySmelt")

_OBTAIN_INVENTORY = ("dirt", "coal", "torch", "log", "planks", "stick", "crafting_table", "wooden_axe",
                     "wooden_pickaxe", "stone", "cobblestone", "furnace", "stone_axe", "stone_pickaxe", "iron_ore",
                     "iron_ingot", "iron_axe", "iron_pickaxe")


@dataclass(frozen=True)
class MineRLV0Spec:
    name: str
    keys: tuple[str, ...]
    enums: dict[str, tuple[str, ...]]
    inventory: tuple[str, ...]       # FlatInventoryObservation items (Box(0, 2304) each)
    max_episode_steps: int
    pov_shape: tuple[int, int, int] = (64, 64, 3)
    camera_limit: float = 180.0      # action `camera`: Box(-180, 180, (2,)) float32, [pitch, yaw] degrees

    @property
    def family(self) -> str:
        for family in ("Treechop", "Navigate", "ObtainIronPickaxe", "ObtainDiamond"):
            if self.name.startswith("MineRL" + family):
                return family
        raise AssertionError(self.name)


def _specs() -> dict[str, MineRLV0Spec]:
    specs = [MineRLV0Spec("MineRLTreechop-v0", MINERL_V0_KEYS, {}, (), 8000)]
    for suffix in ("", "Dense", "Extreme", "ExtremeDense"):
        specs.append(MineRLV0Spec(f"MineRLNavigate{suffix}-v0", MINERL_V0_KEYS, _NAVIGATE_ENUMS, ("dirt",), 6000))
    for suffix in ("", "Dense"):
        specs.append(MineRLV0Spec(f"MineRLObtainIronPickaxe{suffix}-v0", MINERL_V0_KEYS, _OBTAIN_ENUMS,
                                  _OBTAIN_INVENTORY, 6000))
        specs.append(MineRLV0Spec(f"MineRLObtainDiamond{suffix}-v0", MINERL_V0_KEYS, _OBTAIN_ENUMS,
                                  _OBTAIN_INVENTORY, 18000))
    return {spec.name: spec for spec in specs}


MINERL_V0_SPECS: dict[str, MineRLV0Spec] = _specs()


def minerl_v0_spec(env_name: str) -> MineRLV0Spec:
    try:
        return MINERL_V0_SPECS[env_name]
    except KeyError:
        known = ", ".join(sorted(MINERL_V0_SPECS))
        raise ValueError(f"unknown MineRL v0 environment {env_name!r} (known: {known})") from None
