"""The pieces every learner spec builds from (system/phases/steps.py): each rank's replay client draws its own
rows, and the same rank always draws the same ones."""

from __future__ import annotations

import numpy as np

from system.phases.steps import rank_store
from system.replay import ReplayConfig
from system.training.data_parallel import Shard
from tests.replay.helpers import synthetic_chunk


def sampled_steps(rank: int) -> np.ndarray:
    store = rank_store(ReplayConfig(backend="embedded"), 5, Shard(rank, 2))
    for offset in range(0, 64, 8):
        store.add("real", synthetic_chunk("e0", offset, 8, terminal=offset == 56))
    return store.sample("real", 8, 2).steps


def test_each_rank_samples_its_own_rows_and_the_same_ones_every_time():
    assert not np.array_equal(sampled_steps(0), sampled_steps(1))   # ranks sharing a seed would train on copies
    assert np.array_equal(sampled_steps(1), sampled_steps(1))
    assert rank_store(None, 5, Shard(1, 2)) is None                   # no replay config: batches come by hand
