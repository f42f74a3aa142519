"""Scripted-explorer Crafter episodes shared by the learning tests of this package: generating a Crafter world
costs about a second and the tests ask for overlapping sets (the same seeds and lengths), so each episode is
collected once per session. Episode i of a collection is reproducible on its own (system/data/collect.py), so
the first 12 of 16 are the 12 a smaller request would collect."""

import pytest

from system.data.collect import crafter_sources
from system.data.config import CollectConfig
from system.data.episode import Episode


@pytest.fixture(scope="session")
def scripted_episodes():
    """scripted_episodes(seed, count, steps) -> the first `count` episodes of the scripted collection with that
    seed and max_episode_steps, collected on first use."""
    collected: dict[tuple[int, int], list[Episode]] = {}

    def episodes(seed: int, count: int, steps: int) -> list[Episode]:
        have = collected.setdefault((seed, steps), [])
        if len(have) < count:
            cfg = CollectConfig(episodes=count, policy="scripted", seed=seed, max_episode_steps=steps)
            have.extend(source.read() for source in list(crafter_sources(cfg))[len(have):])
        return have[:count]

    return episodes


SMALL_TOKENIZER_EPISODES, SMALL_TOKENIZER_STEPS = 16, 300


@pytest.fixture(scope="session")
def small_tokenizer(scripted_episodes):
    """The small tokenizer (tests/helpers/small_tokenizer.py) trained once on the first 16 scripted episodes of
    150 steps (seed 0) for 300 steps: the tokenizer learning test judges it, the world-model learning test builds
    on it. About 2 minutes on 2 cores."""
    from tests.helpers.small_tokenizer import train_small_tokenizer

    return train_small_tokenizer(scripted_episodes(0, SMALL_TOKENIZER_EPISODES, 150), SMALL_TOKENIZER_STEPS, seed=0)
