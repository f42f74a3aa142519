"""deploy/submit.py: the command it builds, what it refuses, and a real submission to a local `ray start --head`
with token auth on (the ray_head fixture: its own temp dir and token; only its processes are stopped)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import submit
from tests.helpers.ray_head import run_when_agent_is_up

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "deploy" / "submit.py"




def _runtime_env(command: list[str]) -> dict:
    return json.loads(next(a for a in command if a.startswith("--runtime-env-json=")).split("=", 1)[1])


def test_the_command_uploads_the_repo_without_runs_venv_data_and_runs_the_main_job():
    args = submit.parse(["--address", "http://head:8265", "--env", "WANDB_MODE=offline", "--entrypoint-num-gpus",
                         "1", "--no-wait", "--", "--config", "configs/minerl.yaml", "run_dir=/mnt/runs/minerl"])
    command = submit.build_command(args, environ={})
    assert command[1:4] == ["job", "submit", "--address=http://head:8265"]
    env = _runtime_env(command)
    assert env["working_dir"] == str(ROOT)
    assert {"/runs/", "/.venv/", "/data/", "/.git/"} <= set(env["excludes"])
    assert env["env_vars"] == {"WANDB_MODE": "offline"}
    assert "--entrypoint-num-gpus=1.0" in command and "--no-wait" in command
    assert command[command.index("--"):] == ["--", "python", "-m", "system.main", "--config", "configs/minerl.yaml",
                                             "run_dir=/mnt/runs/minerl"]
    assert not any("token" in part.lower() for part in command), "the token never goes on a command line"


def test_the_address_comes_from_ray_address_when_not_given():
    command = submit.build_command(submit.parse(["--", "--config", "configs/smoke.yaml"]),
                                   environ={"RAY_ADDRESS": "http://elsewhere:8265"})
    assert "--address=http://elsewhere:8265" in command


@pytest.mark.parametrize("argv, environ, message", [
    (["--", "--config", "configs/smoke.yaml"], {}, "no cluster address"),
    (["--address", "http://h:8265", "--", "--config", "configs/nope.yaml"], {}, "configs/nope.yaml: no such file"),
    (["--address", "http://h:8265", "--env", "REDIS_PASSWORD=x", "--"], {}, "looks like a secret"),
    (["--address", "http://h:8265", "--env", "NOVALUE", "--"], {}, "expected KEY=VALUE"),
    (["--address", "http://h:8265", "--token-file", "/nonexistent/token", "--"], {}, "/nonexistent/token"),
])
def test_problems_are_refused_before_anything_is_submitted(capsys, argv, environ, message):
    assert submit.main(argv, environ={"HOME": "/nonexistent", **environ}) == 2
    assert message in capsys.readouterr().err


def test_without_any_token_the_error_names_every_place_it_looks(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token there
    assert submit.main(["--address", "http://h:8265", "--"], environ={"HOME": str(tmp_path)}) == 2
    err = capsys.readouterr().err
    assert "RAY_AUTH_TOKEN" in err and "RAY_AUTH_TOKEN_PATH" in err and "--token-file" in err


def test_token_precedence_env_then_file(tmp_path):
    file = tmp_path / "token"
    file.write_text("from-file\n")
    assert submit.read_token({"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(file)}, None) == "from-env"
    assert submit.read_token({"RAY_AUTH_TOKEN_PATH": str(file)}, None) == "from-file"
    assert submit.read_token({}, str(file)) == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(submit.SubmitError, match="empty"):
        submit.read_token({}, str(tmp_path / "empty"))


PROBE = """import os, sys
print("probe listing:", sorted(os.listdir(".")))
print("probe env:", os.environ.get("DREAMER4_PROBE"))
print("probe args:", sys.argv[1:])
"""


def _probe_working_dir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    for name in ("runs/old/checkpoints/big.pt", ".venv/bin/python", "data/minerl/x.npz", "configs/probe.yaml"):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text("x")
    (work / "probe.py").write_text(PROBE)
    return work


def _submit_probe(ray_head, work: Path, token_file: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in ray_head.client_env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    command = [sys.executable, str(SUBMIT), f"--address={ray_head.dashboard_url}", f"--token-file={token_file}",
               f"--working-dir={work}", f"--python={sys.executable}", "--module=probe", "--env=DREAMER4_PROBE=hello",
               "--", "--config", "configs/probe.yaml", "x=1"]
    return run_when_agent_is_up(command, env=env, timeout=300)


def test_a_job_submitted_with_the_token_from_a_file_runs_in_the_uploaded_working_dir(tmp_path, ray_head):
    token_file = tmp_path / "token"
    token_file.write_text(ray_head.token + "\n")
    job = _submit_probe(ray_head, _probe_working_dir(tmp_path), token_file)
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-3000:]
    listing = next(line for line in output.splitlines() if line.startswith("probe listing:"))
    assert "'configs'" in listing and "'probe.py'" in listing
    assert not any(f"'{name}'" in listing for name in ("runs", ".venv", "data")), listing
    assert "probe env: hello" in output
    assert "probe args: ['--config', 'configs/probe.yaml', 'x=1']" in output


def test_a_wrong_token_is_rejected_by_the_cluster(tmp_path, ray_head):
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    job = _submit_probe(ray_head, _probe_working_dir(tmp_path), token_file)
    output = job.stdout + job.stderr
    assert job.returncode != 0
    assert "Invalid authentication token" in output, output[-3000:]
    assert "probe listing" not in output
