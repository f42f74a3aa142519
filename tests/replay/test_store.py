"""Contract suite: every test runs against every backend (embedded, a real redis-server, and a table sharded over
three). A sharded table keeps FIFO order, capacity and the rate limiter per server (docs/replay.md), so the
tests of those exact global orders skip it; sharded_store's own tests cover what holds there instead."""

import threading

import numpy as np
import pytest

from system.replay import ChunkError, RateLimited, ReplayError
from tests.replay.helpers import check_batch_content, synthetic_chunk


def per_server_only(make_test_store, what: str) -> None:
    if make_test_store.backend == "sharded":
        pytest.skip(f"a sharded table keeps {what} per server (tests/replay/test_sharded_store.py)")


def add_episode(store, episode_id, length, chunk_len=8, table="real", terminal=True):
    for offset in range(0, length, chunk_len):
        n = min(chunk_len, length - offset)
        store.add(table, synthetic_chunk(episode_id, offset, n, terminal=terminal and offset + n == length))


def test_round_trip_of_every_field(make_test_store):
    store = make_test_store()
    chunks = [synthetic_chunk("a", 0, 8), synthetic_chunk("a", 8, 5, terminal=True, task_id=3),
              synthetic_chunk("b", 16, 8, task_id=0)]
    for chunk in chunks:
        assert store.add("real", chunk).inserted
    for chunk in chunks:
        got = store.get_chunk("real", chunk.episode_id, chunk.step_offset)
        for name in ("frames", "actions", "rewards", "terminals"):
            want = getattr(chunk, name)
            assert getattr(got, name).dtype == want.dtype and np.array_equal(getattr(got, name), want), name
        assert (got.episode_id, got.step_offset, got.task_id, got.is_last) == \
               (chunk.episode_id, chunk.step_offset, chunk.task_id, chunk.is_last)
    with pytest.raises(KeyError, match="no chunk of episode 'a' at step 16"):
        store.get_chunk("real", "a", 16)
    with pytest.raises(KeyError, match="unknown replay table 'nope'"):
        store.add("nope", chunks[0])


def test_add_is_idempotent_per_episode_and_offset(make_test_store):
    store = make_test_store()
    first = store.add("real", synthetic_chunk("ep", 0, 8))
    add_episode(store, "other", 16)
    before = store.stats("real")
    again = store.add("real", synthetic_chunk("ep", 0, 8))
    assert first.inserted and not again.inserted and again.seq == first.seq
    assert store.stats("real") == before, "a duplicate stores nothing and counts nothing"
    assert store.episode_chunks("real", "ep") == [(0, 8)]
    assert store.episode_chunks("real", "other") == [(0, 8), (8, 8)]
    assert store.episode_steps("real", "other") == 16 and store.episode_steps("real", "unknown") == 0


def test_sequences_stay_inside_one_episode_and_hold_the_right_steps(make_test_store):
    store = make_test_store(seed=1)
    lengths = {"long": 45, "mid": 20, "short": 5}  # T = 12: "short" can never hold a sequence
    for episode_id, length in lengths.items():
        add_episode(store, episode_id, length)
    crossed_chunk_boundary = False
    for _ in range(20):
        batch = store.sample("real", 16, 12)
        assert batch.frames.shape == (16, 12, 8, 8, 3) and batch.actions.shape == (16, 12, 2)
        assert batch.rewards.shape == batch.terminals.shape == batch.steps.shape == (16, 12)
        check_batch_content(batch)
        for episode_id, steps in zip(batch.episode_ids, batch.steps):
            assert steps[0] >= 0 and steps[-1] < lengths[episode_id], (episode_id, steps)
            crossed_chunk_boundary |= steps[0] // 8 != steps[-1] // 8
        last_steps = np.array([lengths[e] - 1 for e in batch.episode_ids])
        assert (batch.terminals == (batch.steps == last_steps[:, None])).all(), "terminal exactly at episode ends"
    assert crossed_chunk_boundary
    with pytest.raises(ReplayError, match=r"holds no run of 50 consecutive stored steps of one episode: the longest "
                                          r"is 45 steps \(3 episodes, 70 steps in 10 chunks\)"):
        store.sample("real", 2, 50)


TINY = (1, 1, 1)  # 14-byte steps: long chunks stay small


def servers(make_test_store) -> int:
    """How many servers share the table (capacities are split between them)."""
    return 3 if make_test_store.backend == "sharded" else 1


def test_evicting_a_long_chunk_does_not_stall_sampling(make_test_store):
    n = servers(make_test_store)
    store = make_test_store(seed=8, capacity_steps=100_100 * n, max_chunk_bytes=2**22)
    store.add("real", synthetic_chunk("long", 0, 100_000, frame_shape=TINY))
    short = [synthetic_chunk(f"s{i}", 0, 2, frame_shape=TINY) for i in range(100 * n)]
    store.add_many("real", short)
    assert store.stats("real").evicted_chunks == 1, "the long chunk is gone, the bound it set must go with it"
    batch = store.sample("real", 16, 2)
    check_batch_content(batch)
    assert all(str(e).startswith("s") for e in batch.episode_ids)


def test_one_long_chunk_among_many_short_ones_is_sampled_efficiently(make_test_store):
    store = make_test_store(seed=9, capacity_steps=10**6, max_chunk_bytes=2**22)
    store.add("real", synthetic_chunk("long", 0, 200_000, frame_shape=TINY))
    for start in range(0, 4000, 500):
        store.add_many("real", [synthetic_chunk(f"s{i}", 0, 4, frame_shape=TINY) for i in range(start, start + 500)])
    before = store.candidates_drawn
    for _ in range(4):
        check_batch_content(store.sample("real", 16, 4))
    drawn = store.candidates_drawn - before
    # About 80% of the stored steps start a window of 4 (all but 3 of the long chunk's, 1 of 4 of a short one's).
    assert drawn <= 4 * 64, f"{drawn} candidates drawn for 64 sequences"


def test_uniform_sampling_draws_every_window_equally_often(make_test_store):
    store = make_test_store(seed=2)
    # Chunks of unequal length (a writer may flush early): windows must not favour steps in short chunks.
    splits = {"e1": [8, 3, 8, 11, 10], "e2": [8, 8, 8], "e3": [5, 12], "e4": [6]}
    lengths = {e: sum(s) for e, s in splits.items()}
    for episode_id, sizes in splits.items():
        for offset, size in zip(np.cumsum([0] + sizes[:-1]), sizes):
            store.add("real", synthetic_chunk(episode_id, int(offset), size))
    T = 10
    windows = {(e, s): 0 for e, n in lengths.items() for s in range(n - T + 1)}  # 31 + 15 + 8 = 54 windows
    for _ in range(60):
        batch = store.sample("real", 100, T)
        for episode_id, start in zip(batch.episode_ids, batch.steps[:, 0]):
            windows[(str(episode_id), int(start))] += 1  # KeyError if a window were invalid
    counts = np.array(list(windows.values()))
    expected = counts.sum() / len(counts)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 95, f"chi-square {chi2:.1f} over {len(counts) - 1} degrees of freedom (p < 0.001 threshold 95)"


def test_recency_weighting_prefers_recent_chunks(make_test_store):
    per_server_only(make_test_store, "recency (positions within each server)")
    store = make_test_store(seed=3)
    for i in range(50):
        store.add("real", synthetic_chunk(f"ep{i:02d}", 8, 8))
    def mean_position(recency):
        positions = []
        for _ in range(10):
            batch = store.sample("real", 100, 4, recency=recency)
            positions += [int(e[2:]) / 50 for e in batch.episode_ids]
        return float(np.mean(positions))
    assert abs(mean_position(0.0) - 0.49) < 0.04  # positions 0..49 uniformly
    assert abs(mean_position(3.0) - 0.79) < 0.04  # density 4 x^3 on [0, 1): mean 0.8, minus half a slot


def test_fifo_eviction_keeps_the_newest_chunks_within_capacity(make_test_store):
    per_server_only(make_test_store, "FIFO order and capacity")
    store = make_test_store(capacity_steps=40)
    added = []
    evicted = 0
    for i in range(12):
        chunk = synthetic_chunk(f"ep{i % 3}", 8 * (i // 3), 8 if i % 4 else 6)
        result = store.add("real", chunk)
        evicted += result.evicted_chunks
        added.append(chunk)
        assert store.stats("real").steps <= 40
    stored = [c for c in added if store.episode_steps("real", c.episode_id) and
              (c.step_offset, c.length) in store.episode_chunks("real", c.episode_id)]
    newest = []
    total = 0
    for chunk in reversed(added):  # the newest chunks that fit in 40 steps
        if total + chunk.length > 40:
            break
        newest.append(chunk)
        total += chunk.length
    assert stored == newest[::-1]
    stats = store.stats("real")
    assert stats.chunks == len(stored) and stats.steps == total
    assert stats.evicted_chunks == evicted == len(added) - len(stored)
    assert stats.evicted_steps == sum(c.length for c in added) - total
    for chunk in added[:len(added) - len(stored)]:
        with pytest.raises(KeyError):
            store.get_chunk("real", chunk.episode_id, chunk.step_offset)
    batch = store.sample("real", 32, 4)
    check_batch_content(batch)
    live = {(c.episode_id, s) for c in stored for s in range(c.step_offset, c.step_offset + c.length)}
    assert all((e, int(s)) in live for e, steps in zip(batch.episode_ids, batch.steps) for s in steps)


def test_start_contexts_do_not_count_towards_the_limiter(make_test_store):
    store = make_test_store(seed=4)
    add_episode(store, "ep", 64)
    contexts = store.sample_contexts("real", 6, 16)
    assert contexts.frames.shape == (6, 16, 8, 8, 3) and contexts.steps.shape == (6, 16)
    check_batch_content(contexts)
    assert store.stats("real").sampled_steps == 0
    store.sample("real", 2, 16)
    assert store.stats("real").sampled_steps == 32


def test_rate_limiter_reports_and_is_shared_by_all_clients(make_test_store):
    per_server_only(make_test_store, "the rate limiter's counters")
    # samples_per_insert 1, min size 16, buffer 64 (steps): inserts run ahead of samples by at most 80 steps.
    settings = dict(samples_per_insert=1.0, min_size_to_sample=16, error_buffer=64.0)
    actor, learner = make_test_store(**settings), make_test_store(**settings)
    with pytest.raises(RateLimited, match="sampling"):
        learner.sample("real", 1, 8, timeout=0)  # nothing stored yet
    inserted = 0
    with pytest.raises(RateLimited, match="inserting 8 steps"):
        for offset in range(0, 1000, 8):
            actor.add("real", synthetic_chunk("ep", offset, 8), timeout=0)
            inserted += 8
    assert inserted == 80
    learner.sample("real", 2, 8, timeout=0)  # 16 sampled steps make room for 16 inserted ones
    actor.add("real", synthetic_chunk("ep", 80, 8), timeout=0)
    actor.add("real", synthetic_chunk("ep", 88, 8), timeout=0)
    with pytest.raises(RateLimited):
        actor.add("real", synthetic_chunk("ep", 96, 8), timeout=0)
    sampled = 16
    with pytest.raises(RateLimited):
        while True:
            learner.sample("real", 1, 8, timeout=0)
            sampled += 8
    assert sampled == 96 + 64 - 16  # samples may run ahead of inserts x ratio by error_buffer - offset
    assert learner.stats("real").sampled_steps == actor.stats("real").sampled_steps == sampled
    with pytest.raises(ValueError, match="can deadlock"):
        learner.sample("real", 16, 16)  # 256 steps at once can never fit a window of 2 x 64


def test_a_blocked_add_waits_until_a_sample_makes_room(make_test_store):
    per_server_only(make_test_store, "the rate limiter's counters")
    settings = dict(samples_per_insert=1.0, min_size_to_sample=8, error_buffer=16.0)
    actor, learner = make_test_store(**settings), make_test_store(**settings)
    actor.add("real", synthetic_chunk("ep", 0, 8))
    actor.add("real", synthetic_chunk("ep", 8, 8))
    actor.add("real", synthetic_chunk("ep", 16, 8))  # 24 inserted - 0 sampled = offset 8 + buffer 16
    results = []
    writer = threading.Thread(target=lambda: results.append(actor.add("real", synthetic_chunk("ep", 24, 8),
                                                                       timeout=20)))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive() and not results, "the add waits for the limiter"
    learner.sample("real", 1, 8)
    writer.join(10)
    assert not writer.is_alive() and results[0].inserted


def test_bad_input_is_refused_and_leaves_the_store_intact(make_test_store):
    store = make_test_store(capacity_steps=200 * servers(make_test_store), max_chunk_bytes=80 * 205)  # 80 steps fit
    good = synthetic_chunk("ep", 0, 8)
    store.add("real", good)
    before = store.stats("real")
    with pytest.raises(ChunkError, match="step layout 8x8x4a2, table 'real' holds 8x8x3a2"):
        store.add("real", synthetic_chunk("ep", 8, 8, frame_shape=(8, 8, 4)))
    with pytest.raises(ChunkError, match="more than table 'real' holds"):
        store.add("real", synthetic_chunk("ep", 8, 201))
    with pytest.raises(ChunkError, match="is 16605 bytes, over the limit max_chunk_bytes = 16400"):
        store.add("real", synthetic_chunk("big", 0, 81))
    with pytest.raises(ChunkError, match="add expects a Chunk"):
        store.add("real", {"frames": good.frames})
    with pytest.raises(ValueError, match="length"):
        store.sample("real", 2, 0)
    assert store.stats("real") == before
    assert store.episode_chunks("real", "ep") == [(0, 8)] and store.episode_steps("real", "big") == 0
    assert np.array_equal(store.get_chunk("real", "ep", 0).frames, good.frames)


def test_add_many_commits_each_chunk_on_its_own(make_test_store):
    per_server_only(make_test_store, "FIFO order and capacity")
    store = make_test_store(capacity_steps=24)
    store.add("real", synthetic_chunk("a", 0, 8))
    results = store.add_many("real", [synthetic_chunk("a", 0, 8), synthetic_chunk("a", 8, 8),
                                      synthetic_chunk("b", 0, 8), synthetic_chunk("b", 8, 8)])
    assert [r.inserted for r in results] == [False, True, True, True]
    assert [r.evicted_chunks for r in results] == [0, 0, 0, 1]  # the fourth pushes out the oldest
    assert store.episode_chunks("real", "a") == [(8, 8)] and store.episode_steps("real", "b") == 16
    with pytest.raises(ChunkError, match="add_many: chunk .* has step layout 8x8x1a2"):
        store.add_many("real", [synthetic_chunk("c", 0, 8), synthetic_chunk("d", 0, 8, frame_shape=(8, 8, 1))])
    assert store.episode_steps("real", "c") == 0, "nothing of a refused batch is stored"
