"""The ingest command line and its sources: action-space resolution, and real runs against a local redis-server
(the server the replay package starts in the run directory), twice, as a user re-running it would."""

import io
import re
import shutil

import pytest
from rich.console import Console

from system.data.config import DataConfig
from system.data.episode_writer import ingest
from system.data.ingest import main, minerl_sources, resolve_action_space
from system.envs.action_space import minecraft_action_space
from system.replay import ReplayConfig, TableConfig, TablesConfig, make_store
from tests.data.fixture_files import read_number, vpt_line, write_minerl_stream, write_vpt_segment

QUIET = Console(file=io.StringIO(), width=200)


def embedded_store(capacity=100_000):
    cfg = ReplayConfig(backend="embedded", tables=TablesConfig(real=TableConfig(capacity_steps=capacity)))
    return make_store(cfg)


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
def need_redis():  # the tests using it are also marked `redis`, like the replay package's
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-redis.sh installs it)")


def run_cli(args):
    out = io.StringIO()
    code = main(args, console=Console(file=out, width=200))
    return code, out.getvalue()


@pytest.mark.redis
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


@pytest.mark.redis
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
