"""ray_session without a cluster address: a private local instance with token auth, shut down on exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray

from system.runtime.ray_cluster import ray_session


def test_without_an_address_the_driver_starts_and_stops_its_own_instance(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    with ray_session(num_cpus=1, temp_dir=temp_dir) as session:
        assert session.local and session.address
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
        assert os.path.exists(os.path.expanduser("~/.ray/auth_token"))  # Ray 2.60 writes the token it uses
    assert not ray.is_initialized()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_cluster_of(temp_dir: str) -> None:
    """Kills only the processes of the cluster started in temp_dir (`ray stop` would kill every Ray on the host)."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in part for part in process.info["cmdline"] or []):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


@pytest.mark.slow
def test_ray_job_submit_runs_a_tiny_main_job_on_a_head_node(tmp_path):
    """`ray start --head` (own temp dir, token auth) then `ray job submit --working-dir . -- <venv python> -m
    system.main ...`: the driver joins with address="auto", env runners collect, the phases finish."""
    root = Path(__file__).resolve().parents[2]
    bin_dir = Path(sys.executable).parent
    temp_dir = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")
    dashboard = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    start = subprocess.run([str(bin_dir / "ray"), "start", "--head", f"--temp-dir={temp_dir}", "--num-cpus=2",
                            f"--port={_free_port()}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                            "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=180)
    try:
        assert start.returncode == 0, start.stderr[-2000:]
        run_dir = tmp_path / "run"
        submit = (
            [str(bin_dir / "ray"), "job", "submit", f"--address=http://127.0.0.1:{dashboard}", "--working-dir", ".",
             "--", sys.executable, "-m", "system.main", "--config", "configs/smoke.yaml", "runtime.env_runners=1",
             "runtime.collect_env_steps=300", "tokenizer.train.steps=2", "dynamics.train.steps=2",
             "dynamics.eval_clips=2", "logging.wandb=disabled", f"run_dir={run_dir}"])
        for _ in range(30):  # the head's job agent comes up a little after `ray start` returns
            job = subprocess.run(submit, cwd=root, env=env, capture_output=True, text=True, timeout=600)
            output = job.stdout + job.stderr
            if "No available agent to submit job" not in output:
                break
            time.sleep(2)
        assert job.returncode == 0, output[-4000:]
        assert "ray: joined the cluster" in output, output[-4000:]  # address="auto", not a private instance
        assert "collect: 300/300 env steps" in output or "env steps from 1 env runners" in output, output[-4000:]
        assert (run_dir / "checkpoints" / "tokenizer.pt").exists() and (run_dir / "checkpoints" / "dynamics.pt").exists()
        assert (run_dir / "metrics.jsonl").exists()
    finally:
        _stop_cluster_of(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
