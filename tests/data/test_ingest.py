"""The ingest command line and its sources: action-space resolution, and real runs against a local redis-server
(the server the replay package starts in the run directory), twice, as a user re-running it would."""

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

import redis

from system.data.config import DataConfig, is_held_out
from system.data.episode_writer import ingest, is_complete
from system.data.ingest import main, minerl_sources, resolve_action_space
from system.envs.action_space import minecraft_action_space
from system.replay import ReplayConfig, TableConfig, TablesConfig, make_store
from system.run.config import load
from system.run.typed_config import ConfigError
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


def run_cli_flat(args):
    """run_cli with the output's whitespace collapsed (the console wraps long messages)."""
    code, text = run_cli(args)
    return code, " ".join(text.split())


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


def test_help_exits_zero():
    for args in (["--help"], ["-h"], ["minerl", "--help"]):
        code, text = run_cli_flat(args)
        assert code == 0 and "usage: python -m system.data.ingest" in text and "run_dir=" in text, args


def test_roots_without_a_dataset_say_what_layout_was_expected_and_what_was_found(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for kind in ("minerl", "vpt"):
        for extra in ([], ["--stats"]):
            code, text = run_cli_flat([kind, str(empty), *extra, "replay.backend=embedded"])
            assert code == 1 and "an empty directory" in text, (kind, extra, text)
    code, text = run_cli_flat(["minerl", str(empty)])
    assert "expected" in text and "<Env>/<stream>/" in text and "recording.mp4" in text

    other = tmp_path / "other"
    (other / "downloads").mkdir(parents=True)
    (other / "notes.txt").write_text("x")
    code, text = run_cli_flat(["minerl", str(other)])
    assert code == 1 and "downloads/" in text and "notes.txt" in text and "MineRLTreechop-v0" in text
    code, text = run_cli_flat(["vpt", str(other)])
    assert code == 1 and "<name>.mp4" in text and "<name>.jsonl" in text and "notes.txt" in text

    root = tmp_path / "minerl"
    write_minerl_stream(root, "MineRLTreechop-v0", "v3_stream", steps=5)
    code, text = run_cli_flat(["minerl", str(root / "MineRLTreechop-v0")])      # one level too deep
    assert code == 1 and "one level too deep" in text and str(root) in text
    code, text = run_cli_flat(["minerl", str(root / "MineRLTreechop-v0" / "v3_stream")])    # two levels
    assert code == 1 and "two levels too deep" in text and str(root) in text
    code, text = run_cli_flat(["vpt", str(root)])                             # MineRL data given to the VPT reader
    assert code == 1 and "ingest minerl" in text

    vpt = tmp_path / "vpt"
    write_vpt_segment(vpt, "seg", [vpt_line(keys=("w",))] * 2)
    (vpt / "seg.jsonl").unlink()
    code, text = run_cli_flat(["vpt", str(vpt)])
    assert code == 1 and "1 .mp4 without a .jsonl" in text and "seg.mp4" in text
    code, text = run_cli_flat(["minerl", str(vpt)])
    assert code == 1 and "seg.mp4" in text


@pytest.mark.redis
def test_the_table_is_checked_before_any_episode_is_read(tmp_path, need_redis):
    run_dir = tmp_path / "run"
    crafter = ["crafter", f"run_dir={run_dir}", "replay.backend=redis", "data.collect.episodes=1",
               "data.collect.max_episode_steps=10"]
    assert run_cli_flat(crafter)[0] == 0
    code, text = run_cli_flat(crafter + ["replay.tables.real.capacity_steps=30000", "data.collect.episodes=2"])
    assert code == 1 and "set replay.tables.real.capacity_steps = 100000" in text, text
    assert "ingest ->" not in text, "the check comes before the work"

    write_vpt_segment(tmp_path / "vpt", "seg", [vpt_line(keys=("w",))] * 3)
    code, text = run_cli_flat(["vpt", str(tmp_path / "vpt"), f"run_dir={run_dir}", "replay.backend=redis"])
    assert code == 1 and "ingest ->" not in text, text
    assert "data.ingest.action_space" in text and "64x64x3a1c17" in text and "crafter" in text


@pytest.mark.redis
def test_trailing_video_frames_are_counted_in_the_ingest_stats(tmp_path, need_redis):
    write_vpt_segment(tmp_path / "vpt", "seg", [vpt_line(keys=("w",))] * 3, frames=5)
    code, text = run_cli(["vpt", str(tmp_path / "vpt"), f"run_dir={tmp_path / 'run'}", "replay.backend=redis"])
    assert code == 0, text
    assert re.search(r"trailing dropped", text) and re.search(r"│ vpt\s*│\s*1\s*│\s*3\s*│.*│\s*2\s*│", text), text


ROOT = Path(__file__).resolve().parents[2]


def stored_steps(run_dir: Path) -> int:
    """Steps the run's local server holds now (0 while it is not up), read without starting anything."""
    try:
        conf = (run_dir / "redis" / "redis.conf").read_text()
        password = (run_dir / "redis" / "password").read_text().strip()
    except FileNotFoundError:
        return 0
    port = int(re.search(r"^port (\d+)$", conf, re.M).group(1))
    client = redis.Redis(port=port, password=password, socket_timeout=1)
    try:
        return int(client.hget("d4:{real}:info", "inserted_steps") or 0)
    except redis.ConnectionError:
        return 0
    finally:
        client.close()


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_ctrl_c_during_ingest_says_interrupted_and_the_rerun_completes(tmp_path, need_redis,
                                                                       sigint_reaches_children):
    run_dir = tmp_path / "run"
    args = ["crafter", f"run_dir={run_dir}", "replay.backend=redis", "data.collect.episodes=8",
            "data.collect.max_episode_steps=60", "data.ingest.chunk_length=16"]
    # Its own process group, as a terminal's foreground job: Ctrl-C is SIGINT to the whole group.
    process = subprocess.Popen([sys.executable, "-m", "system.data.ingest", *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while stored_steps(run_dir) == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the ingest finished before it could be interrupted"
        os.killpg(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out
    assert "interrupted: run the same command again to finish" in " ".join(out.split()) and "Traceback" not in out
    code, text = run_cli(args)
    assert code == 0, text
    assert re.search(r"episodes written\s*│\s*[1-8]\s*│", text)
    with make_store(ReplayConfig(backend="redis"), run_dir) as store:
        episodes = [f"crafter/random/seed0/ep{i:06d}" for i in range(8)]
        assert all(is_complete(store, "real", e) for e in episodes)
        assert store.stats("real").steps == sum(store.episode_steps("real", e) for e in episodes)


def test_after_ctrl_c_half_built_objects_print_no_traceback_at_exit():
    # Crafter loads textures through imageio: interrupted there, the plugin's __del__ fails at exit and Python
    # would print "Exception ignored ... Traceback" under the one-line message.
    code = ("from rich.console import Console\n"
            "from system.data.ingest import interrupted\n"
            "class HalfBuilt:\n"
            "    def __del__(self):\n"
            "        raise AttributeError('no attribute images_to_write')\n"
            "left = HalfBuilt()\n"
            "raise SystemExit(interrupted(Console(), 'interrupted'))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stdout.strip() == "interrupted"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_held_out_episodes_go_to_their_own_table_by_episode_id_and_stay_there(tmp_path):
    for i in range(8):
        write_minerl_stream(tmp_path, "MineRLTreechop-v0", f"v3_player-{i}", steps=10, seed=i)
    data = DataConfig()
    data.ingest.held_out_every = 3
    sources, _ = minerl_sources(tmp_path, data)
    store = embedded_store()
    report = ingest(store, sources[:5], data.ingest, minecraft_action_space(), console=QUIET)
    expected = {s.episode_id for s in sources if is_held_out(s.episode_id, 3)}
    assert 0 < len(expected) < 8
    # the grown dataset: the five stored episodes are found on their side, the new ones split the same way
    again = ingest(store, sources, data.ingest, minecraft_action_space(), console=QUIET)
    assert again.already_stored == 5 and again.ingested == 3
    assert report.held_out + again.held_out - len(expected & {s.episode_id for s in sources[:5]}) == len(expected)
    for source in sources:
        in_held_out = bool(store.episode_chunks("held_out", source.episode_id))
        assert in_held_out == (source.episode_id in expected)
        assert bool(store.episode_chunks("real", source.episode_id)) != in_held_out


def test_held_out_settings_that_cannot_work_are_refused_naming_the_key():
    for overrides, words in ((["data.ingest.held_out_every=1"], "held_out_every = 1"),
                             (["data.ingest.held_out_every=2", "data.ingest.held_out_table=real"], "table of their own"),
                             (["data.ingest.held_out_every=2", "data.ingest.held_out_table=imaginary"],
                              "held_out_table = 'imaginary' is not a replay table")):
        with pytest.raises(ConfigError, match=words):
            load(overrides)
