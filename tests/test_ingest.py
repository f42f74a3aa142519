"""Ingest: episodes into the replay store, idempotent by episode id, bad input skipped and reported.

The library function runs against the embedded store; the command line runs against a real redis-server
(the local server the replay package starts in the run directory), twice, as a user re-running it would.
"""

import io
import re
import shutil

import numpy as np
import pytest
from rich.console import Console

from system.data.chunking import split_into_chunks
from system.data.config import DataConfig, IngestConfig
from system.data.episode import Episode
from system.data.errors import DataError
from system.data.episode_writer import IngestSource, ingest, is_complete
from system.data.ingest import main, minerl_sources, resolve_action_space
from system.envs.action_space import crafter_action_space, minecraft_action_space
from system.replay import ReplayConfig, TableConfig, TablesConfig, make_store
from fixture_files import read_number, vpt_line, write_minerl_stream, write_vpt_segment

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
    original_add, added = store.add, []

    def add_then_crash(table, chunk):   # the process dies in the middle of episode ep2's second chunk
        if chunk.episode_id == "ep2" and chunk.step_offset == 10:
            raise Interrupt
        added.append((chunk.episode_id, chunk.step_offset))
        return original_add(table, chunk)

    store.add = add_then_crash
    with pytest.raises(Interrupt):
        ingest(store, sources, cfg, crafter_action_space(), console=QUIET)
    store.add = original_add
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


def test_minerl_episodes_land_in_the_runs_action_space(tmp_path):
    write_minerl_stream(tmp_path, "MineRLNavigate-v0", "v3_nav", steps=20)
    write_minerl_stream(tmp_path, "MineRLTreechop-v0", "v3_tree", steps=20)
    data = DataConfig()
    sources, _ = minerl_sources(tmp_path, data)
    target = resolve_action_space("minerl", data, "crafter", {s.group for s in sources})
    assert target == minecraft_action_space("MineRLObtainDiamond-v0")     # several envs: the space all fit in
    store = embedded_store()
    report = ingest(store, sources, data.ingest, target, console=QUIET)
    assert report.ingested == 2
    chunk = store.get_chunk("real", "minerl/MineRLNavigate-v0/v3_nav", 0)
    assert chunk.actions.shape == (21, 29) and (chunk.actions[0] == -1).all()
    assert resolve_action_space("minerl", data, "minerl:MineRLTreechop-v0", set()) == minecraft_action_space()
    assert resolve_action_space("minerl", data, "crafter", {"MineRLNavigate-v0"}).name == "minecraft+navigate"

    # A run whose space lacks 'place' cannot take Navigate's episodes (they use it): skipped with the reason.
    data.ingest.action_space = "vpt"
    report = ingest(embedded_store(), sources, data.ingest, resolve_action_space("minerl", data, "crafter", set()),
                    console=QUIET)
    assert report.ingested == 1 and "'place'" in report.stats.skipped[0][1].reason


@pytest.fixture
def need_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-redis.sh installs it)")


def run_cli(args):
    out = io.StringIO()
    code = main(args, console=Console(file=out, width=200))
    return code, out.getvalue()


def test_command_line_minerl_into_local_redis_twice(tmp_path, need_redis):
    root, run_dir = tmp_path / "minerl", tmp_path / "run"
    for i in range(2):
        write_minerl_stream(root, "MineRLTreechop-v0", f"v3_stream-{i}", steps=70 + i, extra_frames=2, seed=i)
    broken = write_minerl_stream(root, "MineRLTreechop-v0", "v3_broken", steps=5)
    (broken["path"] / "rendered.npz").unlink()

    code, text = run_cli(["minerl", str(root), f"run_dir={run_dir}", "replay.backend=redis"])
    assert code == 0, text
    assert "episodes written" in text and "rendered.npz" in text and "missing file" in text
    code, again = run_cli(["minerl", str(root), f"run_dir={run_dir}", "replay.backend=redis"])
    assert code == 0 and re.search(r"already stored \(not read\)\s*│\s*2\s*│", again)
    assert re.search(r"episodes written\s*│\s*0\s*│", again)

    cfg = ReplayConfig(backend="redis")
    with make_store(cfg, run_dir) as store:   # restarts the local server on the run's AOF
        assert store.stats("real").steps == 71 + 72 and store.stats("real").chunks == 4
        chunk = store.get_chunk("real", "minerl/MineRLTreechop-v0/v3_stream-0", 64)
        assert [read_number(f) for f in chunk.frames] == [2 + t for t in range(64, 70)] + [2 + 69]  # MineRL dup
        assert chunk.is_last and chunk.terminals[-1]


def test_command_line_crafter_and_vpt(tmp_path, need_redis):
    run_dir = tmp_path / "run"
    args = ["crafter", f"run_dir={run_dir}", "replay.backend=redis", "data.collect.episodes=2",
            "data.collect.max_episode_steps=30", "data.ingest.chunk_length=16"]
    code, text = run_cli(args)
    assert code == 0, text
    assert "Crafter: 2 episodes, score" in text
    code, text = run_cli(args + ["data.collect.episodes=3"])
    assert code == 0 and "Crafter: 1 episodes" in text                    # only the new episode ran

    write_vpt_segment(tmp_path / "vpt", "seg", [vpt_line(keys=("w",)), vpt_line(), vpt_line(dx=3.0)])
    code, text = run_cli(["vpt", str(tmp_path / "vpt"), f"run_dir={tmp_path / 'run2'}", "replay.backend=redis"])
    assert code == 0, text
    code, text = run_cli(["vpt", str(tmp_path / "vpt"), "--stats"])
    assert code == 0 and "vpt" in text and "Dataset" in text


def test_command_line_errors(tmp_path):
    assert run_cli([])[0] == 2
    assert run_cli(["minerl"])[0] == 2
    code, text = run_cli(["minerl", str(tmp_path / "absent"), "--stats"])
    assert code == 1 and "not a directory" in text
    code, text = run_cli(["crafter", "data.ingest.bogus=1"])
    assert code == 2 and "data.ingest.bogus" in text
    code, text = run_cli(["crafter", "replay.backend=embedded", f"run_dir={tmp_path}"])
    assert code == 2 and "embedded" in text
