"""A table sharded over three real local redis-servers: episodes stay on one server, every server takes its
share, sampling stays uniform over all windows, and clients that disagree about the servers are refused."""

import numpy as np
import pytest

from system.replay import ReplayConfig, ReplayError, TableConfig, TablesConfig, make_store
from system.replay.sharded_store import ShardedStore, shard_of
from tests.conftest import sharded_url as url_of
from tests.replay.helpers import check_batch_content, synthetic_chunk

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture
def servers(redis_servers):
    return redis_servers


def sharded(servers, seed=0, **table) -> ShardedStore:
    cfg = ReplayConfig(backend="redis", url=url_of(servers), block_timeout_s=5.0, socket_timeout_s=2.0,
                       tables=TablesConfig(real=TableConfig(**table)))
    store = make_store(cfg, seed=seed)
    assert isinstance(store, ShardedStore) and len(store.shards) == 3
    return store


def ids_on(shard: int, count: int, prefix: str) -> list[str]:
    """`count` episode ids that land on `shard` of 3."""
    found, i = [], 0
    while len(found) < count:
        if shard_of(f"{prefix}{i}", 3) == shard:
            found.append(f"{prefix}{i}")
        i += 1
    return found


def add_episode(store, episode_id, length, chunk_len=8):
    store.add_many("real", [synthetic_chunk(episode_id, o, min(chunk_len, length - o), terminal=o + chunk_len >= length)
                            for o in range(0, length, chunk_len)])


def test_an_episode_lives_on_one_server_and_every_server_takes_a_share(servers):
    store = sharded(servers)
    for i in range(30):
        add_episode(store, f"ep{i}", 16)
    for k, server in enumerate(servers):
        client = server.client()
        entries = [e.decode().split()[-1] for e in client.hvals("d4:{real}:index")]
        assert entries and all(shard_of(e, 3) == k for e in entries), (k, entries)
    assert store.stats("real").steps == 30 * 16 and store.stats("real").chunks == 60
    again = store.add("real", synthetic_chunk("ep7", 8, 8, terminal=True))
    assert not again.inserted and again.shard == shard_of("ep7", 3)
    assert store.episode_chunks("real", "ep7") == [(0, 8), (8, 8)]
    assert np.array_equal(store.get_chunk("real", "ep7", 8).frames, synthetic_chunk("ep7", 8, 8).frames)
    batch = store.sample("real", 32, 12)
    check_batch_content(batch)
    assert store.stats("real").sampled_steps == 32 * 12
    store.close()


def test_sampling_over_shards_draws_every_window_equally_often(servers):
    store = sharded(servers, seed=3)
    # Shard 0 holds long episodes, shard 1 short ones (most of its starts are rejected), shard 2 a mix: drawing
    # shards by their share of steps alone would favour the windows of shard 1's episodes.
    lengths = {**dict.fromkeys(ids_on(0, 2, "a"), 30), **dict.fromkeys(ids_on(1, 6, "b"), 11),
               **dict.fromkeys(ids_on(2, 3, "c"), 18)}
    for episode_id, length in lengths.items():
        add_episode(store, episode_id, length)
    T = 10
    windows = {(e, s): 0 for e, n in lengths.items() for s in range(n - T + 1)}  # 42 + 12 + 27 = 81 windows
    for _ in range(50):
        batch = store.sample("real", 100, T)
        for episode_id, start in zip(batch.episode_ids, batch.steps[:, 0]):
            windows[(str(episode_id), int(start))] += 1  # KeyError if a window were invalid
    counts = np.array(list(windows.values()))
    expected = counts.sum() / len(counts)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    dof = len(counts) - 1
    assert chi2 < dof + 4.5 * np.sqrt(2 * dof), f"chi-square {chi2:.1f} over {dof} degrees of freedom"
    store.close()


def test_each_server_keeps_its_share_of_the_capacity(servers):
    store = sharded(servers, capacity_steps=60)
    for i in range(40):
        add_episode(store, f"ep{i}", 8)
    stats = store.stats("real")
    assert stats.capacity_steps == 60 and stats.steps <= 60 and stats.evicted_chunks == 40 - stats.chunks
    assert all(s.stats("real").steps <= 20 for s in store.shards)
    check_batch_content(store.sample("real", 16, 4))
    store.close()


def test_clients_that_list_the_servers_in_another_order_are_refused(servers):
    first = sharded(servers)
    add_episode(first, "ep", 8)
    first.close()
    cfg = ReplayConfig(backend="redis", url=url_of([servers[1], servers[0], servers[2]]),
                       tables=TablesConfig(real=TableConfig()))
    with pytest.raises(ReplayError, match=r"holds shard 1 of 3 servers, this client takes it for shard 0 of 3: "
                                          r"list the same servers in the same order in replay.url"):
        make_store(cfg).check_table("real")
    cfg = ReplayConfig(backend="redis", url=url_of(servers[:2]), tables=TablesConfig(real=TableConfig()))
    with pytest.raises(ReplayError, match="holds shard 0 of 3 servers, this client takes it for shard 0 of 2"):
        make_store(cfg).check_table("real")


def test_a_lost_shard_is_reported_by_its_address(servers):
    store = sharded(servers)
    for i in range(6):
        add_episode(store, f"ep{i}", 8)
    servers[1].kill()
    with pytest.raises(ReplayError, match=rf"Redis at redis://127.0.0.1:{servers[1].port}/0"):
        store.sample("real", 8, 4)
    store.close()


def test_local_servers_start_a_sharded_store_in_the_run_directory(tmp_path):
    cfg = ReplayConfig(backend="redis", local_servers=3, tables=TablesConfig(real=TableConfig()))
    with make_store(cfg, tmp_path / "run") as store:
        assert isinstance(store, ShardedStore)
        for i in range(6):
            add_episode(store, f"ep{i}", 8)
        check_batch_content(store.sample("real", 8, 8))
        owned = [s.server for s in store.shards]
        assert [s.directory.name for s in owned] == ["redis", "redis-1", "redis-2"]
    assert all(s.process is None for s in owned), "closing the store stops the servers it started"
    with make_store(cfg, tmp_path / "run") as store:  # a restart finds every shard's data in its AOF
        assert store.stats("real").steps == 48
