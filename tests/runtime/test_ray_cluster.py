"""ray_session without a cluster address: a private local instance with token auth, shut down on exit."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
import ray

from system.runtime.ray_cluster import ray_session
from tests.helpers.ray_head import BIN, run_when_agent_is_up


def test_without_an_address_the_driver_starts_and_stops_its_own_instance(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    with ray_session(num_cpus=1, temp_dir=temp_dir) as session:
        assert session.local and session.address
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
        assert os.path.exists(os.path.expanduser("~/.ray/auth_token"))  # Ray 2.60 writes the token it uses
    assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_job_submit_runs_a_tiny_main_job_on_a_head_node(tmp_path, ray_head):
    """`ray start --head` (own temp dir, token auth; the ray_head fixture) then `ray job submit --working-dir .
    -- <venv python> -m system.main ...`: the driver joins with address="auto", env runners collect, the phases
    finish, through phases 2 and 3 the env runners go on collecting through the world-model service (through which
    phase 3's imagination worker imagines too: runtime.imagine_on=service), and the
    final evaluation plays on an RLlib EnvRunnerGroup acting through the service (eval.backend=rllib), as do the
    live evaluation during phase 3 (eval.every=2: version 2; the last update's is the final evaluation)."""
    root = Path(__file__).resolve().parents[2]
    run_dir = tmp_path / "run"
    submit = (
        [str(BIN / "ray"), "job", "submit", f"--address={ray_head.dashboard_url}", "--working-dir", ".",
         "--", sys.executable, "-m", "system.main", "--config", "configs/smoke.yaml", "runtime.env_runners=1",
         "runtime.collect_env_steps=300", "runtime.steps_per_call=50", "runtime.online_steps_per_update=1",
         "tokenizer.train.steps=2", "dynamics.train.steps=2", "agent.train.steps=4", "imagination.train.steps=4",
         "dynamics.eval_clips=2", "logging.wandb=disabled", "eval.backend=rllib", "eval.episodes=2", "eval.envs=2",
         "eval.max_steps=10", "eval.every=2", "eval.periodic_episodes=2", "runtime.imagination_workers=1",
         "runtime.imagine_on=service", f"run_dir={run_dir}"])
    job = run_when_agent_is_up(submit, cwd=root, env=ray_head.client_env, timeout=600)
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-4000:]
    assert "ray: joined the cluster" in output, output[-4000:]  # address="auto", not a private instance
    assert "collect: 300/300 env steps" in output or "env steps from 1 env runners" in output, output[-4000:]
    assert (run_dir / "checkpoints" / "tokenizer.pt").exists() and (run_dir / "checkpoints" / "dynamics.pt").exists()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    online = [line for line in lines if line["phase"] == "online"]
    assert online and online[-1]["env_steps"] > 0, output[-4000:]
    assert online[-1]["replay_steps"] > 300 + online[-1]["env_steps"] // 2  # the fresh episodes landed in `real`
    # phase 3's imagination worker rolled out through the collection's world-model service (one for both)
    assert "rolling out through the online collection's world-model service" in output, output[-4000:]
    assert [line["step"] for line in lines if line["phase"] == "imagination"] == [4]
    assert "eval (rllib): service ready in" in output and "2 env runners in" in output, output[-4000:]
    live = [(line["step"], line["policy_version"], line["episodes"]) for line in lines if line["phase"] == "live_eval"]
    assert live == [(2, 2, 2)], live
    assert "live_eval (rllib): version 2, 2 episodes" in output, output[-4000:]
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["episodes"] == 2 and all(1 <= n <= 10 for n in evaluation["lengths"])
