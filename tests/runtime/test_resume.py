"""Resume after the driver dies: SIGKILL the main job mid-phase, rerun in the same run directory.

The kill takes the driver down with kill -9 and its redis-server (tied to the driver) with it, as a crashed
node would.
The rerun must continue: finished phases are not trained or evaluated again, the killed phase resumes from its
checkpoint step with its optimiser state, metrics.jsonl has each step once, and the replay table comes back
from the AOF in the run directory (nothing collected twice).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from system.main import main, run
from system.run.config import load
from tests.test_main import TINY

pytestmark = pytest.mark.redis

DYNAMICS_STEPS = 8
# redis: the replay store must outlive the driver (AOF in run_dir/redis); the dynamics phase is long enough
# to be killed in the middle, with a checkpoint and a metrics line every 2 steps
ARGS = [a for a in TINY if a != "replay.backend=embedded"] + [
    "replay.backend=redis", f"dynamics.train.steps={DYNAMICS_STEPS}", "dynamics.checkpoint_every=2",
    "eval.episodes=1", "eval.envs=1",
    "dynamics.model.k_max=4", "dynamics.eval_clips=2",  # k_max = sampling steps: one open-loop pass, not two
    # phase 3 (run only after the resume) through a Ray imagination worker; one 2 x 3 trajectory of slack
    "runtime.imagination_workers=1", "runtime.num_cpus=2", "replay.tables.imagined.min_size_to_sample=6",
    "replay.tables.imagined.error_buffer=6"]


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_driver_killed_mid_phase_resumes_without_redoing_or_losing_anything(tmp_path, capsys):
    run_dir = tmp_path / "run"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen([sys.executable, "-m", "system.main", *ARGS, f"run_dir={run_dir}"], stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    checkpoint = run_dir / "checkpoints" / "dynamics.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    # The driver and whatever shares its session; its redis-server (a session of its own) gets SIGTERM from the
    # parent-death tie and may still be flushing when the resume below starts: the resume waits for it.
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    log.close()
    output = (tmp_path / "first.log").read_text()
    assert checkpoint.exists(), output
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < killed_at < DYNAMICS_STEPS, f"killed at dynamics step {killed_at}: not mid-phase"
    collected = int(re.search(r"(\d+) steps in table 'real'", output).group(1))

    capsys.readouterr()
    assert main(["--resume", str(run_dir)]) == 0  # the run's own config.yaml
    out = capsys.readouterr().out
    # replay: the table came back from the AOF, nothing was collected again
    assert f"0 episodes collected, 2 already stored, {collected} steps in table 'real'" in out
    # the finished phase is neither trained nor evaluated again
    assert "tokenizer: finished at step 4" in out and "tokenizer: resumed" not in out
    lines = records(run_dir)
    assert [r["step"] for r in lines if r["phase"] == "tokenizer"] == [2, 4]
    assert len([r for r in lines if r["phase"] == "tokenizer_eval"]) == 1
    # the killed phase resumes from its checkpoint; each step is logged once, counters never restart
    assert f"dynamics: resumed from {checkpoint} at step {killed_at}" in out
    assert [r["step"] for r in lines if r["phase"] == "dynamics"] == list(range(2, DYNAMICS_STEPS + 1, 2))
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == DYNAMICS_STEPS
    adam_steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {float(DYNAMICS_STEPS)}  # the optimiser state was carried, not started fresh
    assert len([r for r in lines if r["phase"] == "dynamics_eval"]) == 1
    assert json.loads((run_dir / "eval.json").read_text())["episodes"] == 1
    # phase 3 trained on the workers' trajectories
    assert "imagination: 1 Ray imagination workers write table 'imagined'" in out
    [line] = [r for r in lines if r["phase"] == "imagination"]
    assert line["step"] == 2 and line["policy_lag"] >= 0

    # once more: everything finished, nothing is trained, evaluated or logged again
    before = (run_dir / "metrics.jsonl").read_text()
    run(load(ARGS + [f"run_dir={run_dir}"]))
    out = capsys.readouterr().out
    assert all(f"{phase}: finished at step" in out for phase in ("tokenizer", "dynamics", "agent", "imagination"))
    assert "eval: finished for policy version 2" in out and (run_dir / "metrics.jsonl").read_text() == before
