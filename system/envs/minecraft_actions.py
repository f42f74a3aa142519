"""Minecraft action dicts (MineRL v0, MineRL 1.0 / VPT) <-> the project's factored int actions.

    model = dicts_to_model_actions({"forward": f, "camera": cam, "place": places}, space)   # (T,) arrays -> (T, A)
    env_action = model_action_to_dict(model[t], space, env_keys=MINERL_V0_KEYS)            # (A,) -> MineRL dict

A dict maps MineRL action names to per-step arrays: keys (T,) 0/1 integers, `camera` (T, 2) float degrees
[pitch, yaw], enum actions (T,) strings. Keys the dict lacks are 0 (not pressed), because the source could not
press them: MineRL v0 envs and data have 8 of the 23 keys. The camera becomes one 121-way μ-law class
(camera.py); enum strings become their class index (declaration order, 'none' = 0).

Going back, -1 ("no label") is sent as the no-op (key released, camera still, enum 'none'), and keys the
target env does not have are left out of the dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from system.envs.action_space import NO_LABEL, ActionSpace
from system.envs.camera import MINECRAFT_CAMERA


def dicts_to_model_actions(actions: Mapping[str, np.ndarray], space: ActionSpace) -> np.ndarray:
    """Per-step arrays keyed by MineRL action name -> int32 (T, A); raises ValueError naming the bad key."""
    lengths = {name: len(np.asarray(value)) for name, value in actions.items()}
    if not lengths:
        raise ValueError("no actions given")
    steps = next(iter(lengths.values()))
    if any(n != steps for n in lengths.values()):
        raise ValueError(f"action arrays have different lengths: {lengths}")
    unknown = sorted(set(actions) - set(space.names))
    if unknown:
        raise ValueError(f"actions {unknown} are not in the action space {space.name!r}")
    out = np.zeros((steps, len(space)), dtype=np.int32)
    for column, component in enumerate(space.components):
        if component.name not in actions:
            out[:, column] = component.noop_class
            continue
        value = np.asarray(actions[component.name])
        if component.name == "camera":
            if value.shape != (steps, 2) or not np.issubdtype(value.dtype, np.number):
                raise ValueError(f"action 'camera' must be numeric with shape (T, 2), got {value.dtype} {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError("action 'camera' has non-finite values")
            out[:, column] = MINECRAFT_CAMERA.encode(value)
        elif component.kind == "binary":
            if value.shape != (steps,) or not (np.issubdtype(value.dtype, np.integer) or value.dtype == bool):
                raise ValueError(f"action {component.name!r} must be integer 0/1 with shape (T,), "
                                 f"got {value.dtype} {value.shape}")
            if np.any((value != 0) & (value != 1)):
                raise ValueError(f"action {component.name!r} has values other than 0/1: {np.unique(value)[:5]}")
            out[:, column] = value
        else:
            out[:, column] = _labels_to_classes(component.name, component.labels, value)
    return out


def _labels_to_classes(name: str, labels: tuple[str, ...], value: np.ndarray) -> np.ndarray:
    if value.dtype.kind not in "US":
        raise ValueError(f"enum action {name!r} must hold strings, got {value.dtype}")
    strings = value.astype(str)
    unique, inverse = np.unique(strings, return_inverse=True)
    lookup = {label: i for i, label in enumerate(labels)}
    missing = [s for s in unique if s not in lookup]
    if missing:
        raise ValueError(f"enum action {name!r} has values {missing[:5]} outside {list(labels)}")
    return np.array([lookup[s] for s in unique], dtype=np.int32)[inverse].reshape(strings.shape)


def model_action_to_dict(action: np.ndarray, space: ActionSpace, env_keys: Iterable[str] | None = None) -> dict:
    """(A,) int action -> one step's MineRL action dict; `env_keys` limits the keys to those the env has."""
    action = space.validate(np.asarray(action).reshape(-1), where="action")
    keys = set(env_keys) if env_keys is not None else None
    out: dict = {}
    for column, component in enumerate(space.components):
        value = int(action[column])
        if value == NO_LABEL:
            value = component.noop_class
        if component.name == "camera":
            out["camera"] = MINECRAFT_CAMERA.decode(np.array(value)).astype(np.float32)
        elif component.kind == "binary":
            if keys is None or component.name in keys:
                out[component.name] = value
        else:
            out[component.name] = component.labels[value]
    return out
