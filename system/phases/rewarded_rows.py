"""The task-relevant rows of phase 2 for an environment whose task is its score (Crafter): a share of the rows are
windows that hold a reward.

    batch = draw_relevant(store, table, rows=8, length=16, rewarded_share=0.5, threshold=0.5)   # a replay Batch

Why: achievement rewards are rare (about 3% of the steps of scripted Crafter episodes), so uniform windows give
the reward head a few rewarded steps per batch and it learns them slowly; the paper's mixture trains BC and reward
on task-relevant sequences. Measured on the long learning test's data (benchmarks/reward_head/mixture.py, 400
phase-2 steps, standardised head inputs, held-out reward AUC in two sample streams): 24 episodes 0.64 with uniform
relevant rows, 0.71 with half of them rewarded windows; 48 episodes 0.81 / 0.71 against 0.79 / 0.82, within the
spread between streams (docs/architecture.md, "Reward head").

How: `pool` x rows windows are drawn uniformly from the table (one store.sample); the first
round(rewarded_share x rows) rows are taken from the candidates that hold a step with |reward| >= threshold, in
draw order, the rest from the other candidates in draw order (so the rows stay uniform draws of their kind). If
the pool holds too few of a kind, the other kind fills the rows; nothing is drawn twice. rewarded_share 0 is one
plain store.sample of `rows`.
"""

from __future__ import annotations

import numpy as np

from system.replay.store import Batch

POOL = 4   # candidate windows per row: a 16-step Crafter window holds a reward about a third of the time


def select_rows(batch: Batch, picks) -> Batch:
    """The rows `picks` of a Batch, in that order."""
    picks = np.asarray(picks, dtype=np.int64)
    return Batch(*(getattr(batch, f)[picks] for f in ("frames", "actions", "rewards", "terminals", "steps",
                                                      "episode_ids", "task_ids")))


def rewarded_picks(rewards: np.ndarray, rows: int, rewarded_share: float, threshold: float) -> list[int]:
    """rewards (candidates, T) -> `rows` candidate indices: round(share x rows) rewarded ones first, then others."""
    holds = (np.abs(rewards) >= threshold).any(axis=1)
    rewarded, other = list(np.flatnonzero(holds)), list(np.flatnonzero(~holds))
    want = min(int(round(rewarded_share * rows)), len(rewarded))
    want = max(want, rows - len(other))   # too few others: rewarded windows fill the rest
    return [int(i) for i in rewarded[:want] + other[:rows - want]]


def draw_relevant(store, table: str, rows: int, length: int, rewarded_share: float, threshold: float,
                  pool: int = POOL) -> Batch:
    if rewarded_share <= 0.0:
        return store.sample(table, rows, length)
    candidates = store.sample(table, rows * pool, length)
    return select_rows(candidates, rewarded_picks(candidates.rewards, rows, rewarded_share, threshold))
