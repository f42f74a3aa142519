"""The main job on an ingested MineRL dataset (env.name = minerl:<Env>): phases 1-3 train from the tables that
`python -m system.data.ingest minerl` filled, evaluation clips come from the held-out episodes, and a run with
nothing ingested (or ingested without a held-out split, or in another layout) is refused saying which command
fills it. The dataset is MineRL's on-disk format (tests/data/fixture_files.py), the store a real redis-server.
"""

import io
import json
import shutil

import numpy as np
import pytest
import torch
from rich.console import Console

from system.data.config import is_held_out
from system.data.ingest import main as ingest_main
from system.envs.action_space import minecraft_action_space
from system.main import main
from system.model.agent_heads import AgentHeads
from system.replay import make_store
from system.run.config import load
from tests.data.fixture_files import write_minerl_stream
from tests.test_main import TINY

pytestmark = pytest.mark.redis

ENV = "MineRLObtainDiamond-v0"
STREAMS = [f"v3_player-{i}" for i in range(6)]
HELD_OUT_EVERY = 3  # of these six streams, 0 and 4 are held out (crc32 of the episode id)
DATASET = [a for a in TINY if a not in ("replay.backend=embedded", "eval.episodes=2")] + [
    "replay.backend=redis", f"env.name=minerl:{ENV}", f"data.ingest.held_out_every={HELD_OUT_EVERY}",
    "eval.episodes=0", "eval.every=0"]


@pytest.fixture(autouse=True)
def need_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-redis.sh installs it)")


def ingest(root, run_dir, *extra) -> str:
    out = io.StringIO()
    code = ingest_main(["minerl", str(root), *DATASET, f"run_dir={run_dir}", *extra],
                       console=Console(file=out, width=200))
    assert code == 0, out.getvalue()
    return " ".join(out.getvalue().split())


def test_phases_train_from_the_ingested_tables_and_evaluate_on_held_out_episodes(tmp_path, capsys):
    root, run_dir = tmp_path / "minerl", tmp_path / "run"
    for i, name in enumerate(STREAMS):
        write_minerl_stream(root, ENV, name, steps=30 + i, seed=i)
    ids = [f"minerl/{ENV}/{name}" for name in STREAMS]
    held_out = [i for i in ids if is_held_out(i, HELD_OUT_EVERY)]
    assert len(held_out) == 2  # the split this test is written for
    text = ingest(root, run_dir)
    assert "held out (1 in 3) │ 2 │" in text

    cfg = load([*DATASET, f"run_dir={run_dir}"])
    with make_store(cfg.replay, run_dir) as store:  # the split: each episode in one table
        for episode in ids:
            in_training = bool(store.episode_chunks("real", episode))
            in_held_out = bool(store.episode_chunks("held_out", episode))
            assert in_held_out == (episode in held_out) and in_training != in_held_out, episode
        training_steps, held_out_steps = store.stats("real").steps, store.stats("held_out").steps

    capsys.readouterr()
    assert main([*DATASET, f"run_dir={run_dir}"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert (f"replay: dataset run, {training_steps} steps in table 'real' (training), {held_out_steps} steps in "
            "table 'held_out' (held-out)") in out
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for phase in ("tokenizer", "dynamics", "agent", "imagination"):
        assert any(r["phase"] == phase for r in records), phase
    assert any(r["phase"] == "tokenizer_eval" and "held_out_psnr" in r for r in records)
    assert any(r["phase"] == "dynamics_eval" and "open_loop_psnr" in r for r in records)
    # the heads act in the dataset's space (23 keys + camera + Obtain's five enums): a strict load checks shapes
    heads = AgentHeads(cfg.agent.heads, minecraft_action_space(ENV).components, cfg.dynamics.model.agent_tokens,
                       cfg.dynamics.model.transformer.dim)
    heads.load_state_dict(torch.load(run_dir / "checkpoints" / "agent.pt", weights_only=True)["heads"])
    assert not (run_dir / "eval.json").exists()  # eval.episodes = 0: MineRL is not installed here


def test_a_dataset_run_with_nothing_ingested_is_refused_naming_the_ingest_command(tmp_path, capsys):
    assert main([*DATASET, f"run_dir={tmp_path / 'run'}"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the training table 'real' is empty" in err
    assert f"python -m system.data.ingest minerl $MINERL_DATA_ROOT --config <this run's config> run_dir=" in err
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def test_a_dataset_without_a_held_out_split_or_in_another_layout_is_refused(tmp_path, capsys):
    root, run_dir = tmp_path / "minerl", tmp_path / "run"
    for i, name in enumerate(STREAMS[:2]):
        write_minerl_stream(root, ENV, name, steps=20, seed=i)
    ingest(root, run_dir, "data.ingest.held_out_every=0")
    assert main([*DATASET, f"run_dir={run_dir}", "data.ingest.held_out_every=0"]) == 1
    assert "set data.ingest.held_out_every" in " ".join(capsys.readouterr().err.split())

    ingest(root, run_dir)  # now with the split: the held-out episode is stored in its own table
    # the run reads another space (Treechop: keys + camera only) than the tables were written in
    assert main([*DATASET, f"run_dir={run_dir}", "env.name=minerl:MineRLTreechop-v0"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "holds steps of layout" in err and "action space 'minecraft'" in err


def test_dataset_runs_refuse_what_only_crafter_has_yet(capsys):
    for extra, key in (("eval.episodes=2", "eval.episodes"), ("runtime.env_runners=1", "runtime.env_runners")):
        assert main([*DATASET, extra]) == 2
        assert key in capsys.readouterr().err


def test_held_out_clips_come_only_from_the_held_out_table_at_any_offset():
    from system.data.ingested_tables import held_out_from_table
    from system.replay import ReplayConfig
    from tests.replay.helpers import frame_value, synthetic_chunk

    cfg = load([*DATASET, "replay.backend=embedded"])
    store = make_store(ReplayConfig(backend="embedded"), seed=0)
    store.add("real", synthetic_chunk("trained", 0, 40, terminal=True))
    store.add("held_out", synthetic_chunk("unseen", 0, 40, terminal=True))
    frames, actions = held_out_from_table(store, cfg, clips=16, frames=8)
    assert frames.shape == (16, 8, 8, 8, 3) and actions.shape == (16, 8, 2)
    starts = [int(np.flatnonzero(frame_value("unseen", np.arange(40)) == clip[0, 0, 0, 0])[0]) for clip in frames]
    for clip, start in zip(frames, starts):  # every frame is the held-out episode's, in order from its start
        assert (clip[:, 0, 0, 0] == frame_value("unseen", np.arange(start, start + 8))).all()
    assert len(set(starts)) > 4  # windows from many offsets, not only the episode's first frames
