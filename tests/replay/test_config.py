"""Replay configuration: values that cannot work are refused when the config is built, naming the key."""

import pytest

from system.replay.config import ReplayConfig, TableConfig


@pytest.mark.parametrize("settings, message", [
    (dict(capacity_steps=0), "capacity_steps = 0"),
    (dict(capacity_steps=-5), "capacity_steps = -5"),
    (dict(min_size_to_sample=0), "min_size_to_sample = 0"),
    (dict(samples_per_insert=-1.0), "samples_per_insert = -1.0"),
    (dict(error_buffer=-1.0), "error_buffer = -1.0"),
])
def test_table_settings_that_cannot_work_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TableConfig(**settings)


@pytest.mark.parametrize("settings, message", [
    (dict(socket_timeout_s=0.0), "socket_timeout_s = 0.0"),
    (dict(retries=-1), "retries = -1"),
    (dict(max_chunk_bytes=0), "max_chunk_bytes = 0"),
    (dict(block_timeout_s=-1.0), "block_timeout_s = -1.0"),
    (dict(key_prefix=""), "key_prefix"),
    (dict(key_prefix="a{b}"), "key_prefix"),
    (dict(local_servers=0), "local_servers = 0"),
])
def test_connection_settings_that_cannot_work_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ReplayConfig(**settings)


def test_a_frozen_server_costs_seconds_per_call_not_minutes():
    cfg = ReplayConfig()
    assert 0 < cfg.socket_timeout_s <= 10 and cfg.retries <= 2
