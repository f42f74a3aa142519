"""The idempotent store writer on the embedded store: interrupted runs, bad episodes, conflicting versions."""

import io

import numpy as np
import pytest
from rich.console import Console

from system.data.chunking import split_into_chunks
from system.data.config import IngestConfig
from system.data.episode import Episode
from system.data.episode_writer import IngestSource, ingest, is_complete
from system.data.errors import DataError
from system.envs.action_space import crafter_action_space
from system.replay import ReplayConfig, TableConfig, TablesConfig, make_store

QUIET = Console(file=io.StringIO(), width=200)


def embedded_store(capacity=100_000):
    cfg = ReplayConfig(backend="embedded", tables=TablesConfig(real=TableConfig(capacity_steps=capacity)))
    return make_store(cfg)


def synthetic_source(episode_id, steps, calls, fail=False, shift=0):
    space = crafter_action_space()

    def read():
        calls.append(episode_id)
        if fail:
            raise DataError(f"/data/{episode_id}.mp4", "video is corrupt or truncated after 3 frames")
        frames = ((np.arange(steps) + shift) % 256).astype(np.uint8)[:, None, None, None].repeat(8, 1).repeat(8, 2)
        actions = (np.arange(steps) % 17).astype(np.int32)[:, None]
        actions[0] = -1
        terminals = np.zeros(steps, bool)
        terminals[-1] = True
        return Episode(episode_id, frames.repeat(3, 3), actions, np.zeros(steps, np.float32), terminals)

    return IngestSource(episode_id, "crafter", f"/data/{episode_id}", space, read)


class Interrupt(Exception):
    pass


def test_interrupted_run_is_completed_without_duplicates():
    cfg = IngestConfig(chunk_length=10, size=(8, 8))
    store, calls = embedded_store(), []
    sources = [synthetic_source(f"ep{i}", 25 + i, calls) for i in range(4)]
    original_add_many = store.add_many

    def add_then_crash(table, chunks):   # the process dies before episode ep2's second chunk is committed
        results = []
        for chunk in chunks:
            if chunk.episode_id == "ep2" and chunk.step_offset == 10:
                raise Interrupt
            results += original_add_many(table, [chunk])
        return results

    store.add_many = add_then_crash
    with pytest.raises(Interrupt):
        ingest(store, sources, cfg, crafter_action_space(), console=QUIET)
    store.add_many = original_add_many
    assert is_complete(store, "real", "ep1") and not is_complete(store, "real", "ep2")
    assert store.episode_chunks("real", "ep2") == [(0, 10)]

    calls.clear()
    report = ingest(store, sources, cfg, crafter_action_space(), console=QUIET)
    assert calls == ["ep2", "ep3"]                                      # complete episodes are not even read
    assert (report.already_stored, report.ingested, report.chunks_present) == (2, 2, 1)
    lengths = {f"ep{i}": 25 + i for i in range(4)}
    for episode_id, steps in lengths.items():
        assert store.episode_steps("real", episode_id) == steps and is_complete(store, "real", episode_id)
    assert store.stats("real").steps == sum(lengths.values())            # nothing stored twice
    assert store.stats("real").chunks == sum(-(-n // 10) for n in lengths.values())

    calls.clear()
    report = ingest(store, sources, cfg, crafter_action_space(), console=QUIET)
    assert calls == [] and report.already_stored == 4 and report.chunks_added == 0


def test_bad_episodes_are_skipped_and_reported_and_the_rest_continue():
    store, calls = embedded_store(), []
    sources = [synthetic_source("a", 12, calls), synthetic_source("bad", 12, calls, fail=True),
               synthetic_source("c", 12, calls)]
    report = ingest(store, sources, IngestConfig(chunk_length=8, size=(8, 8)), crafter_action_space(), console=QUIET)
    assert report.ingested == 2 and report.skipped == 1
    ((group, error),) = report.stats.skipped
    assert error.path == "/data/bad.mp4" and "truncated" in error.reason
    assert is_complete(store, "real", "c") and store.episode_steps("real", "bad") == 0


def test_a_different_version_of_a_partial_episode_is_not_mixed_in():
    store, calls = embedded_store(), []
    cfg = IngestConfig(chunk_length=10, size=(8, 8))
    first = synthetic_source("ep", 30, calls).read()
    store.add("real", next(split_into_chunks(first, 10)))                 # an interrupted run stored steps 0..9
    report = ingest(store, [synthetic_source("ep", 30, calls, shift=1)], cfg, crafter_action_space(), console=QUIET)
    assert report.skipped == 1 and "different version" in report.stats.skipped[0][1].reason
    assert store.episode_steps("real", "ep") == 10
