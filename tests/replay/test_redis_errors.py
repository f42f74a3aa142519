"""Redis failures reach the user as ReplayErrors naming the server and the fix: a refused or silent port, a
password changed mid-run, a server killed or frozen mid-run (real redis-server processes, SIGKILL and SIGSTOP).
Timeouts are small here so that every case takes about a second."""

import os
import signal
import socket

import pytest

from system.replay import NotAcknowledged, ReplayConfig, ReplayError, TableConfig, TablesConfig
from system.replay.redis_errors import redact
from system.replay.redis_store import RedisStore, connect
from system.replay.server import free_port
from tests.replay.helpers import check_batch_content, synthetic_chunk

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]


def config(url: str, **settings) -> ReplayConfig:
    settings = {"socket_timeout_s": 0.5, "retries": 0, **settings}
    return ReplayConfig(backend="redis", url=url, block_timeout_s=2.0, tables=TablesConfig(real=TableConfig()),
                        **settings)


def store_on(server, **settings) -> RedisStore:
    cfg = config(server.url, **settings)
    return RedisStore(cfg, connect(server.url, server.password, cfg))


def test_a_refused_port_names_the_server_and_the_setting():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ReplayError, match=rf"cannot reach Redis at {url}: .*Connection refused.*replay.url"):
        connect(url, None, config(url, retries=1))


def test_a_server_that_never_answers_times_out_in_the_configured_time():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        with pytest.raises(ReplayError, match=rf"Redis at {url} did not answer within replay.socket_timeout_s = "
                                              r"0.3 s .*while connecting.*frozen, overloaded or unreachable"):
            connect(url, None, config(url, socket_timeout_s=0.3))


def test_a_password_changed_mid_run_names_the_password_variable(redis_server):
    store = store_on(redis_server)
    store.add("real", synthetic_chunk("ep", 0, 8))
    admin = redis_server.client()
    admin.config_set("requirepass", "rotated")
    admin.client_kill_filter(_type="normal", skipme=True)  # drop the store's authenticated connection
    with pytest.raises(ReplayError, match=rf"Redis at {redis_server.url} refused the credentials while sampling "
                                          r"table 'real'.*\$REDIS_PASSWORD"):
        store.sample("real", 1, 4)


def test_a_server_killed_mid_run_is_reported_and_adds_are_not_acknowledged(redis_server):
    store = store_on(redis_server)
    store.add("real", synthetic_chunk("ep", 0, 8))
    redis_server.kill()
    with pytest.raises(NotAcknowledged, match=rf"lost the connection to Redis at {redis_server.url} while adding 1 "
                                              r"chunk to table 'real'.*adding the same chunks again is safe"):
        store.add("real", synthetic_chunk("ep", 8, 8))
    for call in (lambda: store.sample("real", 1, 4), lambda: store.stats("real"),
                 lambda: store.episode_chunks("real", "ep")):
        with pytest.raises(ReplayError, match=rf"lost the connection to Redis at {redis_server.url}"):
            call()


def test_an_add_to_a_frozen_server_is_not_acknowledged_and_the_re_add_stores_it_once(redis_server):
    store = store_on(redis_server)
    store.add("real", synthetic_chunk("ep", 0, 8))
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(NotAcknowledged, match=r"did not answer within replay.socket_timeout_s = 0.5 s while "
                                                  r"adding 1 chunk to table 'real'; it may or may not have been stored"):
            store.add("real", synthetic_chunk("ep", 8, 8))
        with pytest.raises(ReplayError, match="did not answer .* while sampling table 'real'"):
            store.sample("real", 1, 4)
    finally:
        os.kill(pid, signal.SIGCONT)
    store.add("real", synthetic_chunk("ep", 8, 8))  # the retry the message recommends
    stats = store.stats("real")
    assert (stats.chunks, stats.steps) == (2, 16), "the chunk is stored exactly once"
    assert store.episode_chunks("real", "ep") == [(0, 8), (8, 8)]
    check_batch_content(store.sample("real", 4, 16))


def test_messages_never_show_the_password():
    assert redact("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(ReplayError) as error:
        connect(url, None, config(url))
    assert "hunter2" not in str(error.value) and ":***@127.0.0.1" in str(error.value)
