"""Crafter dataset collection on the real crafter package: reproducible episodes, the step convention, policies."""

import numpy as np
import pytest

from system.data.collect import crafter_sources, episode_seeds, policy_tag
from system.data.config import CollectConfig
from system.data.crafter_policies import make_policy
from system.envs.action_space import crafter_action_space
from system.envs.crafter_score import CrafterStats


class AlwaysDo:
    """A stand-in for a checkpointed policy, loaded through the '<module>:<factory>' hook."""

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint

    def reset(self, seed):
        pass

    def act(self, frame, info):
        assert frame.shape == (64, 64, 3)
        return np.array([5])   # 'do'


def make_always_do(checkpoint, action_space):
    assert action_space == crafter_action_space()
    return AlwaysDo(checkpoint)


def test_an_episode_regenerates_identically_on_its_own():
    cfg = CollectConfig(episodes=2, policy="random", seed=4, max_episode_steps=40)
    first = [source.read() for source in crafter_sources(cfg)]
    again = list(crafter_sources(cfg))[1].read()   # episode 1 alone, without running episode 0 first
    assert again.episode_id == first[1].episode_id == "crafter/random/seed4/ep000001"
    np.testing.assert_array_equal(again.frames, first[1].frames)
    np.testing.assert_array_equal(again.actions, first[1].actions)
    assert not np.array_equal(first[0].frames[0], first[1].frames[0])   # different worlds
    assert episode_seeds(4, 1) != episode_seeds(4, 0) and episode_seeds(4, 1) != episode_seeds(5, 1)


def test_step_convention_and_episode_summary():
    cfg = CollectConfig(episodes=1, policy="scripted", seed=0, max_episode_steps=60)
    episode = next(iter(crafter_sources(cfg))).read()
    assert episode.frames.shape[1:] == (64, 64, 3) and episode.actions.shape[1] == 1
    assert episode.actions[0, 0] == -1 and (episode.actions[1:] >= 0).all() and episode.rewards[0] == 0
    metadata = episode.metadata
    assert len(episode) == metadata["length"] + 1
    assert episode.rewards.sum() == pytest.approx(metadata["return"], abs=1e-4)
    if metadata["truncated"]:
        assert not episode.terminals.any()
    else:
        assert episode.terminals.tolist() == [False] * (len(episode) - 1) + [True]


def test_scripted_policy_beats_random_on_crafter_score():
    """Baseline: the random policy on the same seeds (3 episodes of at most 300 steps); margin: strictly higher."""
    scores = {}
    for policy in ("random", "scripted"):
        stats = CrafterStats()
        for source in crafter_sources(CollectConfig(episodes=3, policy=policy, seed=0, max_episode_steps=300)):
            stats.add(source.read().metadata)
        scores[policy] = stats.summary()["score"]
    assert scores["scripted"] > scores["random"] > 0


def test_checkpointed_policy_factory():
    cfg = CollectConfig(episodes=1, policy="tests.data.test_collect:make_always_do", checkpoint="/ckpt/agent-7.pt",
                        max_episode_steps=5)
    (source,) = list(crafter_sources(cfg))
    assert source.episode_id == "crafter/make_always_do@agent-7/seed0/ep000000"
    assert policy_tag(cfg.policy, cfg.checkpoint) == "make_always_do@agent-7"
    assert (source.read().actions[1:, 0] == 5).all()
    with pytest.raises(ValueError, match="expected 'random', 'scripted'"):
        make_policy("greedy", "", crafter_action_space())
    with pytest.raises(ValueError, match="cannot load"):
        make_policy("no.such.module:factory", "", crafter_action_space())
