"""Phase 2's relevant rows with a share of rewarded windows (system/phases/rewarded_rows.py)."""

from __future__ import annotations

import numpy as np
import torch
import pytest

from system.phases.rewarded_rows import draw_relevant, rewarded_picks
from system.replay import ReplayConfig
from system.replay import make_store
from system.training.agent_trainer import AgentTrainConfig
from tests.replay.helpers import frame_value, synthetic_chunk


def test_picks_take_the_share_from_rewarded_candidates_in_draw_order_and_fill_from_the_others():
    rewards = np.zeros((8, 3), np.float32)
    rewards[[1, 4, 6], 2] = 1.0
    rewards[5, 0] = -1.0            # a negative reward of the threshold's size counts too
    rewards[3, 1] = 0.1             # below the threshold: not a rewarded window
    assert rewarded_picks(rewards, 4, 0.5, 0.5) == [1, 4, 0, 2]
    assert rewarded_picks(rewards, 4, 1.0, 0.5) == [1, 4, 5, 6]
    assert rewarded_picks(rewards, 2, 0.0, 0.5) == [0, 2]
    only_two = np.zeros((8, 3), np.float32)
    only_two[[2, 7], 0] = 1.0
    assert rewarded_picks(only_two, 4, 1.0, 0.5) == [2, 7, 0, 1]             # too few rewarded: others fill
    mostly = np.ones((8, 3), np.float32)
    mostly[3] = 0.0
    assert rewarded_picks(mostly, 4, 0.25, 0.5) == [0, 1, 2, 3]              # too few others: rewarded fill


def store_with_rare_rewards(seed: int):
    """4 episodes of 64 steps; an achievement (reward 1) at the steps 5, 21, 37, 53 of each and 0.1 at step 9 of
    each chunk: a 6-step window holds an achievement about a third of the time."""
    store = make_store(ReplayConfig(backend="embedded"), seed=seed)
    for e in range(4):
        for offset in range(0, 64, 16):
            chunk = synthetic_chunk(f"e{e}", offset, 16, terminal=offset == 48)
            chunk.rewards[:] = 0.0
            chunk.rewards[5], chunk.rewards[9] = 1.0, 0.1
            store.add("real", chunk)
    return store


def test_draw_relevant_gives_whole_consistent_windows_and_the_share_of_rewarded_ones():
    batch = draw_relevant(store_with_rare_rewards(0), "real", 8, 6, rewarded_share=0.5, threshold=0.5)
    holds = (batch.rewards >= 0.5).any(1)
    assert holds.sum() == 4, batch.rewards   # half the rows; uniform windows: about a third
    for b in range(8):                         # every field of a row comes from the same window
        episode, steps = str(batch.episode_ids[b]), batch.steps[b]
        assert (np.diff(steps) == 1).all()
        assert (batch.frames[b] == frame_value(episode, steps)[:, None, None, None]).all()
        assert (batch.actions[b, :, 0] == np.where(steps == 0, -1, steps % 1000)).all()
        assert holds[b] == (steps % 16 == 5).any()
    assert (batch.rewards[~holds] <= 0.1).all() and not holds[4:].any()   # the others come after, unrewarded
    plain = store_with_rare_rewards(0).sample("real", 8, 6)
    same = draw_relevant(store_with_rare_rewards(0), "real", 8, 6, rewarded_share=0.0, threshold=0.5)
    assert np.array_equal(plain.steps, same.steps) and list(plain.episode_ids) == list(same.episode_ids)


def test_bad_rewarded_share_or_threshold_names_the_key():
    with pytest.raises(ValueError, match="rewarded_share"):
        AgentTrainConfig(rewarded_share=1.5)
    with pytest.raises(ValueError, match="rewarded_threshold"):
        AgentTrainConfig(rewarded_threshold=0.0)


def test_phase_two_draws_its_relevant_rows_with_the_rewarded_share():
    from system.model.agent_heads import AgentHeads, AgentHeadsConfig
    from system.objectives.shortcut import ShortcutConfig
    from system.phases.train_agent import AgentSteps
    from system.training.agent_trainer import AgentTrainer
    from system.training.config import AgentSection
    from tests.helpers.dynamics import TOY_SPACE, tiny_model

    model = tiny_model()
    section = AgentSection(heads=AgentHeadsConfig(hidden=8, mtp=1, bins=11),
                           train=AgentTrainConfig(batch_size=8, seq_len=6, rewarded_share=1.0))
    heads = AgentHeads(section.heads, TOY_SPACE.components, 1, 32)
    steps = AgentSteps(AgentTrainer(model, heads, section.train, ShortcutConfig()), torch.nn.Identity(),
                       store_with_rare_rewards(1), section, "real")
    uniform, relevant = steps.sample()
    assert relevant.rewards.shape == uniform.rewards.shape == (4, 6)
    assert (relevant.rewards >= 0.5).any(1).all()   # 4 uniform windows would all hold one about 2% of the time
