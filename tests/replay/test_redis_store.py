"""Redis-only properties: auth, server settings, foreign values, kill -9 durability, multi-process concurrency."""

import json
import multiprocessing
import struct
import threading
import time

import numpy as np
import pytest
import redis
from tests.conftest import replay_config

from system.replay import ChunkFormatError, EmbeddedStore, NotAcknowledged, ReplayError, make_store
from system.replay.redis_store import RedisStore, connect
from system.replay.server import LocalRedisServer
from tests.replay.helpers import check_batch_content, synthetic_chunk

pytestmark = pytest.mark.redis


def redis_store(server, seed=0, **settings) -> RedisStore:
    cfg = replay_config("redis", server.url, **settings)
    return RedisStore(cfg, connect(server.url, server.password, cfg), seed)


def test_a_client_without_the_password_is_refused(redis_server, monkeypatch):
    no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)  # fail at once instead of retrying for seconds
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_server.port, retry=no_retry).get("d4:{real}:info")
    monkeypatch.setenv("REDIS_PASSWORD", "wrong")
    with pytest.raises(ReplayError, match="refused the credentials"):
        make_store(replay_config("redis", redis_server.url), None)
    monkeypatch.delenv("REDIS_PASSWORD")
    with pytest.raises(ReplayError, match=r"requires a password|refused"):
        make_store(replay_config("redis", redis_server.url), None)


def test_local_server_binds_loopback_with_aof_and_noeviction(redis_server):
    client = redis_server.client()
    config = client.config_get("*")
    assert config["bind"].split()[0] == "127.0.0.1" and config["protected-mode"] == "yes"
    assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["dir"] == str(redis_server.directory)
    assert oct((redis_server.directory / "password").stat().st_mode & 0o777) == "0o600"
    assert redis_server.password not in " ".join(str(a) for a in redis_server.process.args), "not in `ps`"


def test_make_store_picks_the_backend(tmp_path, redis_server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    with make_store(replay_config("auto"), tmp_path) as store:
        assert isinstance(store, RedisStore) and store.server is None  # connected to the configured URL
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ReplayError, match="cannot reach Redis at redis://127.0.0.1:1/0"):
        make_store(replay_config("auto"), tmp_path)
    monkeypatch.delenv("REDIS_URL")
    with make_store(replay_config("auto"), tmp_path / "run") as store:  # no URL: a local server in the run
        assert isinstance(store, RedisStore) and (tmp_path / "run" / "redis" / "appendonlydir").is_dir()
        server = store.server
    assert server.process is None, "the store stops the server it started"
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert isinstance(make_store(replay_config("auto"), tmp_path), EmbeddedStore)


def test_clients_with_other_table_settings_are_refused(redis_server):
    redis_store(redis_server, capacity_steps=100).stats("real")
    with pytest.raises(ReplayError, match=r"created with capacity_steps = 100, this config says 200: set "
                                          r"replay.tables.real.capacity_steps = 100"):
        redis_store(redis_server, capacity_steps=200).stats("real")
    with pytest.raises(ReplayError, match=r"set replay.tables.real.samples_per_insert = 0.0"):
        redis_store(redis_server, capacity_steps=100, samples_per_insert=2.0).stats("real")


BOUNDS = (1000, 1000)  # synthetic actions stay below 1000


def test_same_length_foreign_bytes_are_skipped_never_returned(redis_server):
    store = redis_store(redis_server, seed=11)
    for episode in ("a", "b", "c", "d"):
        for offset in range(0, 32, 8):
            store.add("real", synthetic_chunk(episode, offset, 8, action_classes=BOUNDS))
    client = redis_server.client()
    record = synthetic_chunk("a", 8, 8, action_classes=BOUNDS).layout.record_size
    frame = 8 * 8 * 3
    def overwrite(seq, step, offset_in_record, raw: bytes):
        key = f"d4:{{real}}:chunk:{seq}"
        start = int(client.hget("d4:{real}:index", seq).split()[2])
        client.setrange(key, start + step * record + offset_in_record, raw)
    overwrite(1, 3, frame, struct.pack("<i", 1000))               # episode a, step 11: action 0 out of bounds
    overwrite(5, 2, frame + 8, struct.pack("<f", float("nan")))    # episode b, step 10: reward NaN
    overwrite(9, 4, frame + 12, b"\x07")                           # episode c, step 12: terminal byte 7
    bad = {("a", 11), ("b", 10), ("c", 12)}
    for _ in range(10):
        batch = store.sample("real", 32, 4)
        check_batch_content(batch)
        assert not batch.terminals.any()
        assert not {(str(e), int(s)) for e, steps in zip(batch.episode_ids, batch.steps) for s in steps} & bad
    assert store.malformed_skipped > 0, "sequences through the foreign bytes were drawn, reported and skipped"


def test_corrupted_bookkeeping_gives_a_replay_error_naming_the_key(redis_server):
    store = redis_store(redis_server)
    store.add("real", synthetic_chunk("ep", 0, 8))
    client = redis_server.client()
    client.hset("d4:{real}:info", "steps", "eight")
    for call in (lambda: store.add("real", synthetic_chunk("ep", 8, 8)), lambda: store.sample("real", 1, 4),
                 lambda: store.stats("real")):
        with pytest.raises(ReplayError, match=r"d4:\{real\}:info: field 'steps' = 'eight' is not a number"):
            call()
    client.hset("d4:{real}:info", "steps", 8)
    client.delete("d4:{real}:index")
    client.set("d4:{real}:index", "not a hash")
    with pytest.raises(ReplayError, match=r"d4:\{real\}:index: WRONGTYPE"):
        store.sample("real", 1, 4)
    client.delete("d4:{real}:info")
    client.set("d4:{real}:info", "not a hash")
    fresh = redis_store(redis_server)
    with pytest.raises(ReplayError, match=r"d4:\{real\}:info: WRONGTYPE"):
        fresh.stats("real")


def test_evicting_a_chunk_with_a_malformed_index_entry_keeps_the_counters_right(redis_server):
    store = redis_store(redis_server, capacity_steps=24)
    for chunk in (synthetic_chunk("a", 0, 8), synthetic_chunk("a", 8, 8), synthetic_chunk("b", 0, 8)):
        store.add("real", chunk)
    client = redis_server.client()
    client.hset("d4:{real}:index", "0", "garbage")
    assert store.add("real", synthetic_chunk("b", 8, 8)).evicted_chunks == 1
    stats = store.stats("real")
    assert (stats.chunks, stats.steps, stats.evicted_chunks, stats.evicted_steps) == (3, 24, 1, 8)
    assert client.exists("d4:{real}:chunk:0") == 0 and client.exists("d4:{real}:chunk:1") == 1
    # The evicted chunk's episode entry could not be cleared (its index entry named no episode): it must not
    # make the chunk look stored.
    again = store.add("real", synthetic_chunk("a", 0, 8))
    assert again.inserted and store.stats("real").steps == 24
    check_batch_content(store.sample("real", 8, 8))


def test_tables_written_before_positions_existed_get_them_on_first_use(redis_server):
    store = redis_store(redis_server, seed=12, capacity_steps=40)
    for i in range(6):
        store.add("real", synthetic_chunk(f"e{i % 2}", 8 * (i // 2), 8))
    client = redis_server.client()
    client.delete("d4:{real}:pos")  # what a table from before this key existed looks like
    client.hdel("d4:{real}:info", "positions")
    old_client = redis_store(redis_server, seed=12, capacity_steps=40)
    check_batch_content(old_client.sample("real", 16, 12))
    old_client.add("real", synthetic_chunk("e0", 24, 8))
    stats = old_client.stats("real")
    assert (stats.chunks, stats.steps) == (5, 40)
    assert client.zcard("d4:{real}:pos") == 5


def test_foreign_values_raise_clear_errors_and_are_skipped_when_sampling(redis_server):
    store = redis_store(redis_server, seed=5)
    for episode in ("a", "b"):
        for offset in range(0, 32, 8):
            store.add("real", synthetic_chunk(episode, offset, 8))
    client = redis_server.client()
    foreign = b"\x80\x04\x95 looks like a pickle, is not a chunk"
    client.set("d4:{real}:chunk:1", foreign)  # episode a, steps 8..15
    with pytest.raises(ChunkFormatError, match=r"d4:\{real\}:chunk:1: not a replay chunk"):
        store.get_chunk("real", "a", 8)
    batch = store.sample("real", 64, 6)
    check_batch_content(batch)
    assert store.malformed_skipped > 0, "sequences through the foreign value were drawn and skipped"
    assert not any(e == "a" and 8 <= s[-1] and s[0] < 16 for e, s in zip(batch.episode_ids, batch.steps))
    client.hset("d4:{real}:index", "6", "rm -rf / ; not an entry")  # episode b, steps 16..23
    batch = store.sample("real", 64, 6)
    check_batch_content(batch)
    assert not any(e == "b" and 16 <= s[-1] and s[0] < 24 for e, s in zip(batch.episode_ids, batch.steps))
    with pytest.raises(ReplayError, match=r"d4:\{real\}:index: malformed index entry"):
        store.episode_chunks("real", "b")
    assert np.array_equal(store.get_chunk("real", "b", 0).frames, synthetic_chunk("b", 0, 8).frames)
    assert store.stats("real").steps == 64, "the store's own bookkeeping is untouched"


def test_failed_adds_leave_no_staging_keys(redis_server):
    store = redis_store(redis_server, capacity_steps=64)
    store.add("real", synthetic_chunk("ep", 0, 8))
    store.add("real", synthetic_chunk("ep", 0, 8))  # duplicate: staged, then dropped
    with pytest.raises(Exception):
        store.add("real", synthetic_chunk("ep", 8, 8, frame_shape=(4, 4, 3)))
    assert list(redis_server.client().scan_iter("d4:{real}:staging:*")) == []
    assert len(list(redis_server.client().scan_iter("d4:{real}:chunk:*"))) == 1


def test_both_backends_draw_the_same_batches_from_the_same_seed(redis_server, tmp_path):
    stores = [redis_store(redis_server, seed=7), EmbeddedStore(replay_config("embedded"), seed=7)]
    for store in stores:
        for episode, length in (("x", 37), ("y", 20), ("z", 9)):
            for offset in range(0, length, 8):
                store.add("real", synthetic_chunk(episode, offset, min(8, length - offset)))
    for recency in (0.0, 2.0):
        a, b = (store.sample("real", 32, 10, recency=recency) for store in stores)
        assert np.array_equal(a.episode_ids, b.episode_ids) and np.array_equal(a.steps, b.steps)
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.rewards, b.rewards)


def test_no_acknowledged_chunk_is_lost_when_redis_is_killed(tmp_path):
    server = LocalRedisServer(tmp_path / "redis", appendfsync="always").start()
    store = redis_store(server)
    chunks = [synthetic_chunk(f"ep{i // 4}", 8 * (i % 4), 8, terminal=i % 4 == 3) for i in range(5000)]
    acknowledged, enough = [], threading.Event()

    def write():
        try:
            for chunk in chunks:
                store.add("real", chunk)
                acknowledged.append(chunk)
                if len(acknowledged) == 40:
                    enough.set()
        except NotAcknowledged:
            pass  # the server died under us: the add in flight was not acknowledged
        finally:
            enough.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert enough.wait(60)
    server.kill()  # kill -9 while the writer is mid-stream
    writer.join(60)
    assert not writer.is_alive() and 40 <= len(acknowledged) < len(chunks)
    server = LocalRedisServer(tmp_path / "redis", appendfsync="always").start()  # same AOF, same password
    try:
        store = redis_store(server)
        for chunk in acknowledged:
            assert np.array_equal(store.get_chunk("real", chunk.episode_id, chunk.step_offset).frames, chunk.frames)
        stats = store.stats("real")
        # The in-flight chunk may or may not have been committed; if it was, it is whole.
        assert stats.chunks in (len(acknowledged), len(acknowledged) + 1)
        if stats.chunks > len(acknowledged):
            extra = chunks[len(acknowledged)]
            stored = store.get_chunk("real", extra.episode_id, extra.step_offset)
            assert np.array_equal(stored.frames, extra.frames) and np.array_equal(stored.rewards, extra.rewards)
        assert stats.steps == 8 * stats.chunks
    finally:
        server.kill()


# Multi-process concurrency: writers and readers on one table with heavy eviction, for a bounded time.
CONCURRENT_CAPACITY = 40 * 16  # 40 chunks of 16 steps
RUN_SECONDS = 4.0


def _writer(url, password, index, out_path):
    server = type("S", (), {"url": url, "password": password})
    store = redis_store(server, capacity_steps=CONCURRENT_CAPACITY)
    acknowledged = []
    deadline = time.monotonic() + RUN_SECONDS
    episode = 0
    while time.monotonic() < deadline and len(acknowledged) < 400:
        episode_id = f"w{index}-e{episode}"
        for offset in range(0, 64, 16):
            chunk = synthetic_chunk(episode_id, offset, 16, terminal=offset == 48)
            result = store.add("real", chunk)
            acknowledged.append([episode_id, offset, result.seq, result.inserted])
            if offset == 16:  # a retried write must not store the chunk twice
                again = store.add("real", chunk)
                acknowledged.append([episode_id, offset, again.seq, again.inserted])
        episode += 1
    out_path.write_text(json.dumps(acknowledged))


def _reader(url, password, index, out_path):
    server = type("S", (), {"url": url, "password": password})
    store = redis_store(server, seed=index, capacity_steps=CONCURRENT_CAPACITY)
    checked, errors = 0, []
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        try:
            batch = store.sample("real", 8, 24, timeout=10)  # 24 steps span two or three chunks
            check_batch_content(batch)
            assert len(set(map(str, batch.episode_ids))) >= 1
            checked += len(batch.episode_ids)
        except Exception as error:  # reported to the parent, which fails the test
            errors.append(repr(error))
    out_path.write_text(json.dumps({"checked": checked, "errors": errors[:5]}))


def test_concurrent_writers_and_readers_never_see_torn_or_lost_chunks(redis_server, tmp_path):
    context = multiprocessing.get_context("spawn")
    args = (redis_server.url, redis_server.password)
    writers = [context.Process(target=_writer, args=(*args, i, tmp_path / f"w{i}.json")) for i in range(3)]
    readers = [context.Process(target=_reader, args=(*args, i, tmp_path / f"r{i}.json")) for i in range(2)]
    redis_store(redis_server, capacity_steps=CONCURRENT_CAPACITY).add("real", synthetic_chunk("seed", 0, 32))
    for process in writers + readers:
        process.start()
    for process in writers + readers:
        process.join(60)
        assert process.exitcode == 0
    for i in range(2):
        report = json.loads((tmp_path / f"r{i}.json").read_text())
        assert report["errors"] == [] and report["checked"] > 0, report
    records = [r for i in range(3) for r in json.loads((tmp_path / f"w{i}.json").read_text())]
    inserted = [r for r in records if r[3]]
    retries = [r for r in records if not r[3]]
    assert retries and all(any(i[:3] == r[:3] for i in inserted) for r in retries), "duplicates point at the original"
    seqs = sorted(r[2] for r in inserted)
    assert seqs == list(range(1, len(seqs) + 1)), "every acknowledged insert got its own place in the FIFO"
    store = redis_store(redis_server, capacity_steps=CONCURRENT_CAPACITY)
    stats = store.stats("real")
    head = stats.evicted_chunks
    assert stats.evicted_chunks > 100, "the readers raced against heavy eviction"
    assert stats.chunks + stats.evicted_chunks == len(inserted) + 1 and stats.steps <= CONCURRENT_CAPACITY
    for episode_id, offset, seq, _ in inserted:
        if seq >= head:
            chunk = store.get_chunk("real", episode_id, offset)
            assert np.array_equal(chunk.frames, synthetic_chunk(episode_id, offset, 16).frames)
        else:
            with pytest.raises(KeyError):
                store.get_chunk("real", episode_id, offset)
    client = redis_server.client()
    assert client.hlen("d4:{real}:index") == stats.chunks
    assert len(list(client.scan_iter("d4:{real}:chunk:*"))) == stats.chunks
    assert list(client.scan_iter("d4:{real}:staging:*")) == []


def test_the_store_reloads_its_scripts_after_a_script_flush(redis_server):
    store = redis_store(redis_server)
    store.add("real", synthetic_chunk("ep", 0, 8))
    redis_server.client().script_flush()  # what a restarted server without the scripts looks like
    assert store.add("real", synthetic_chunk("ep", 8, 8)).inserted
    redis_server.client().script_flush()
    check_batch_content(store.sample("real", 4, 12))
    assert list(redis_server.client().scan_iter("d4:{real}:staging:*")) == []


def test_a_client_recovers_when_the_server_lost_its_data(redis_server):
    store = redis_store(redis_server, capacity_steps=100)
    store.add("real", synthetic_chunk("ep", 0, 8))
    redis_server.client().flushall()  # a restart without AOF looks like this to a connected client
    assert store.add("real", synthetic_chunk("ep", 0, 8), timeout=2).inserted
    assert store.stats("real").steps == 8 and store.stats("real").capacity_steps == 100
    assert redis_server.client().hget("d4:{real}:info", "capacity_steps") == b"100"
    check_batch_content(store.sample("real", 2, 4, timeout=2))
