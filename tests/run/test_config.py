"""The assembled schema: values that span sections are checked on load, before any work, naming the key."""

import pytest

from system.run.config import load
from system.run.typed_config import ConfigError


def test_the_ingest_table_must_be_a_configured_replay_table():
    with pytest.raises(ConfigError, match=r"data.ingest.table = 'bogus'.*replay.tables.*'real', 'imagined'"):
        load(["data.ingest.table=bogus"])
    assert load(["data.ingest.table=imagined"]).data.ingest.table == "imagined"


def test_replay_capacities_are_checked_on_load():
    with pytest.raises(ConfigError, match=r"replay.tables.real.*capacity_steps = 0"):
        load(["replay.tables.real.capacity_steps=0"])
    with pytest.raises(ConfigError, match=r"data.ingest.chunk_length = 200.*replay.tables.real.capacity_steps = 100"):
        load(["replay.tables.real.capacity_steps=100", "data.ingest.chunk_length=200"])


def test_where_imagination_workers_roll_out_is_checked_by_name():
    assert load(["runtime.imagine_on=service"]).runtime.imagine_on == "service"
    with pytest.raises(ConfigError, match=r"runtime.imagine_on = 'gpu': expected one of \('worker', 'service'\)"):
        load(["runtime.imagine_on=gpu"])
    assert load(["runtime.imagination_worker_gpus=0.5"]).runtime.imagination_worker_gpus == 0.5
    with pytest.raises(ConfigError, match=r"runtime.imagination_worker_gpus = 1.0 .* only with runtime.imagine_on"):
        load(["runtime.imagination_worker_gpus=1", "runtime.imagine_on=service"])
    with pytest.raises(ConfigError, match=r"runtime.imagination_worker_gpus = -1.0 must be >= 0"):
        load(["runtime.imagination_worker_gpus=-1"])


def test_the_evaluation_backend_is_checked_by_name():
    assert [load([f"eval.backend={b}"]).eval.backend for b in ("driver", "service", "rllib")] == \
        ["driver", "service", "rllib"]
    with pytest.raises(ConfigError, match=r"eval.backend = 'ray': expected one of \('driver', 'service', 'rllib'\)"):
        load(["eval.backend=ray"])
