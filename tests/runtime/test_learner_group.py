"""A dead rank: the learner group is rebuilt from the last checkpoint and continues as if nothing happened."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from learners.world_model_learner import TokenizerLearner
from system.runtime.learner_group import GroupRestarted, LearnerGroup
from tests.training.test_data_parallel import SECTION, SEED, TOLERANCE, _max_difference, _reference


def test_a_killed_rank_rebuilds_the_group_from_the_checkpoint(local_ray, tmp_path):
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (4, 3, 16, 16, 3), dtype=np.uint8) for _ in range(3)]
    group = LearnerGroup(lambda rank, world: TokenizerLearner.remote(SECTION, None, rank=rank, world_size=world,
                                                                     seed=SEED), 2, tmp_path / "tok_dp.pt")

    def step(frames):
        return lambda learners: [learners[r].train_on.remote(frames[2 * r:2 * r + 2]) for r in range(2)]

    assert group.start() == 0
    try:
        group.run(step(batches[0]))
        group.run(step(batches[1]))
        assert group.checkpoint() == 2
        os.kill(local_ray.get(group.learners[1].pid.remote()), signal.SIGKILL)
        with pytest.raises(GroupRestarted, match="step 2"):
            group.run(step(batches[2]))
        assert group.restarts == 1
        group.run(step(batches[2]))  # redo the step after the checkpoint
        states = local_ray.get([learner.state_dict.remote() for learner in group.learners])
    finally:
        group.stop()
    assert [s["step"] for s in states] == [3, 3]
    assert _max_difference(states[0]["model"], states[1]["model"]) == 0.0
    assert _max_difference(states[0]["model"], _reference(batches)) < TOLERANCE
