"""Shared fixtures. Real components only: Crafter frames come from the real `crafter` package."""

import numpy as np
import pytest
import torch


def _random_policy_frames(seed: int, steps: int) -> np.ndarray:
    """(steps, 64, 64, 3) uint8 frames of one Crafter world under a uniform random policy (resets on done)."""
    import crafter

    env = crafter.Env(size=(64, 64), seed=seed)
    rng = np.random.default_rng(seed)
    frames = [env.reset()]
    while len(frames) < steps:
        obs, _, done, _ = env.step(int(rng.integers(env.action_space.n)))
        frames.append(env.reset() if done else obs)
    return np.stack(frames)


@pytest.fixture(scope="session")
def crafter_frames():
    """crafter_frames(seed, steps) -> uint8 frames, cached for the whole test session."""
    cache: dict = {}

    def get(seed: int, steps: int) -> np.ndarray:
        if (seed, steps) not in cache:
            cache[seed, steps] = _random_policy_frames(seed, steps)
        return cache[seed, steps]

    return get


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
