"""Start frames: held-out Crafter worlds (the main job's held-out seed) and fresh worlds from a seed, as real
frames with their actions; a dataset run's clips come from its held-out table."""

from types import SimpleNamespace

import numpy as np
import pytest

from system.data.held_out import HELD_OUT_SEED_OFFSET
from system.envs.action_space import crafter_action_space
from system.play.start_frames import TableStarts, UnknownStart
from system.run.config import load
from tests.helpers.play_run import SMOKE


@pytest.fixture
def starts(crafter_starts):
    return crafter_starts      # conftest.py: 3 context frames from held-out worlds 0 and 1


def test_held_out_worlds_are_real_frames_of_the_held_out_collection_kept_once_made(starts):
    cfg = load(SMOKE)
    assert starts.collect.seed == cfg.data.collect.seed + HELD_OUT_SEED_OFFSET   # never a training world
    assert starts.collect.policy == cfg.data.collect.policy
    assert [c.id for c in starts.choices()] == ["held_out:0", "held_out:1", "fresh"]
    context = starts.context("held_out:0", seed=1)
    assert context.frames.shape == (3, 64, 64, 3) and context.frames.dtype == np.uint8
    assert context.actions[0].tolist() == [-1] and crafter_action_space().validate(context.actions[1:]) is not None
    assert context.frames.std() > 10                               # a rendered world, not a blank
    assert starts.context("held_out:0", seed=2) is context          # kept: the seed is the noise's, not the world's
    for bad in ("held_out:2", "held_out:x", "training:0"):
        with pytest.raises(UnknownStart, match="unknown start"):
            starts.context(bad, seed=0)


def test_a_fresh_world_comes_from_its_seed_and_stands_still(starts):
    """The seed is the world's (CrafterEnv reproduces a seed's world: tests/envs); the player then stands still."""
    fresh = starts.context("fresh", seed=5)
    assert fresh.label == "fresh Crafter world (seed 5)" and fresh.frames.shape == (3, 64, 64, 3)
    assert fresh.actions[:, 0].tolist() == [-1, 0, 0]               # reset, then noop
    assert not np.array_equal(fresh.frames[0], starts.context("held_out:0", seed=5).frames[0])


class HeldOutTable:
    """Stands in for the replay store's sample_contexts on a held-out table."""

    def __init__(self):
        self.asked = []

    def sample_contexts(self, table, clips, frames):
        self.asked.append((table, clips, frames))
        rng = np.random.default_rng(0)
        return SimpleNamespace(frames=rng.integers(0, 256, (clips, frames, 64, 64, 3), dtype=np.uint8),
                               actions=rng.integers(0, 2, (clips, frames, 25)).astype(np.int32))


def test_a_dataset_run_starts_from_clips_of_its_held_out_table():
    cfg = load(["--config", "configs/minerl.yaml", "data.ingest.held_out_every=20"])
    store = HeldOutTable()
    starts = TableStarts(store, cfg, context_frames=6, held_out=2)
    assert store.asked == [(cfg.data.ingest.held_out_table, 2, 6)]
    assert [c.id for c in starts.choices()] == ["held_out:0", "held_out:1"]     # no fresh world without an env
    assert starts.context("held_out:1", seed=0).frames.shape == (6, 64, 64, 3)
    with pytest.raises(UnknownStart):
        starts.context("fresh", seed=0)
