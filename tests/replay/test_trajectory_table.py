"""The `imagined` table on a real redis-server: the sample-to-insert ratio holds workers back against the
learner exactly as limiter.py says, FIFO eviction keeps capacity_steps, and a missing seq names itself."""

import pytest

from system.replay.config import ReplayConfig, TableConfig, TablesConfig
from system.replay.limiter import RateLimited, RateLimiter
from system.replay.trajectory_table import TrajectoryTable, trajectory_table

pytestmark = pytest.mark.redis


def table_on(server, **settings) -> TrajectoryTable:
    cfg = ReplayConfig(backend="redis", tables=TablesConfig(imagined=TableConfig(**settings)))
    return TrajectoryTable(server.client(), cfg, seed=0)


def test_inserts_wait_for_the_learner_as_the_limiter_says(redis_server):
    settings = dict(samples_per_insert=1.0, min_size_to_sample=6, error_buffer=6.0)
    table, limiter = table_on(redis_server, **settings), RateLimiter(**settings)
    inserted = sampled = size = 0
    for round_ in range(6):
        allowed = limiter.can_insert(size, inserted, sampled, 6)
        if allowed:
            table.insert(b"x%d" % round_, steps=6, timeout=0)
            inserted, size = inserted + 6, size + 6
        else:  # the limiter's refusal is the table's refusal
            with pytest.raises(RateLimited, match="'imagined': insert"):
                table.insert(b"refused", steps=6, timeout=0)
        if round_ % 2:  # the learner samples every other round: the workers run ahead and get held back
            assert limiter.can_sample(size, inserted, sampled, 6)
            _, data = table.sample(timeout=0)
            assert data.startswith(b"x")
            sampled += 6
    assert table.stats() == {"size": size, "inserted": inserted, "sampled": sampled, "trajectories": size // 6}
    assert inserted - sampled <= 12  # never more than the ratio's slack ahead
    assert inserted < 6 * 6  # some inserts were refused


def test_sampling_waits_for_min_size_and_eviction_keeps_capacity(redis_server):
    table = table_on(redis_server, capacity_steps=10, min_size_to_sample=8)
    table.insert(b"a", steps=4)
    with pytest.raises(RateLimited, match="sample"):
        table.sample(timeout=0)
    seqs = [table.insert(data, steps=4) for data in (b"b", b"c", b"d")]
    assert seqs == [1, 2, 3] and table.stats()["size"] == 8 and table.stats()["trajectories"] == 2
    assert table.get(3) == b"d" and {table.sample()[1] for _ in range(20)} == {b"c", b"d"}
    with pytest.raises(KeyError, match="seq 0"):
        table.get(0)
    with pytest.raises(ValueError, match="capacity_steps 10"):
        table.insert(b"big", steps=11)


def test_the_embedded_store_is_refused_by_name():
    from system.replay.embedded_store import EmbeddedStore

    from system.replay import ReplayError

    with pytest.raises(ReplayError, match="EmbeddedStore"):
        trajectory_table(EmbeddedStore(ReplayConfig(backend="embedded")))


def test_settings_that_could_deadlock_are_refused_with_the_fix(redis_server):
    table = table_on(redis_server, samples_per_insert=1.0, min_size_to_sample=6, error_buffer=5.0)
    with pytest.raises(ValueError, match="raise error_buffer to at least 6.0"):
        table.check_fits(6)
