"""A `ray start --head` cluster of a test's own: its own temp dir, free ports, token auth with its own token.

    with start_ray_head(num_cpus=2) as head:
        subprocess.run([..., "ray", "job", "submit", f"--address={head.dashboard_url}", ...], env=head.client_env)

`ray stop` kills every Ray process on the host by name, so the cluster is stopped by killing only its own
processes: those that carry its token in their environment or name its temp dir. The token is generated per cluster and handed to `ray start` as
RAY_AUTH_TOKEN: a client that does not send it gets 401 (so a test of token handling cannot pass by reading
~/.ray/auth_token by accident). conftest.py exposes this as the `ray_head` fixture.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's ray CLI and python: a job's `python` resolves via ray start's PATH


@dataclass(frozen=True)
class RayHead:
    dashboard_url: str   # http://127.0.0.1:<port>, the address of `ray job submit`
    token: str
    temp_dir: str
    client_env: dict     # os.environ with RAY_AUTH_MODE=token and this cluster's RAY_AUTH_TOKEN, no RAY_ADDRESS


def free_ports(count: int) -> list[int]:
    """Distinct ports free right now (all sockets held open together, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _opens_a_file_in(entry: Path, directory: str) -> bool:
    try:
        return any(os.readlink(fd).startswith(directory) for fd in (entry / "fd").iterdir())
    except OSError:
        return False


def cluster_pids(temp_dir: str, token: str) -> list[int]:
    """PIDs of the processes of one cluster (Linux /proc). A process is the cluster's when it carries its token
    in its environment (everything `ray start` spawns inherits it), names the temp dir on its command line, or
    holds a file open in it (every Ray process logs there): agents that renamed themselves (ray::DashboardAgent,
    which also overwrites the environment block /proc shows) are found by the last. Other users' processes
    are not readable, so never matched."""
    marker, pids = f"RAY_AUTH_TOKEN={token}".encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ or temp_dir.encode() in cmdline or _opens_a_file_in(entry, temp_dir):
            pids.append(int(entry.name))
    return pids


def stop_cluster(temp_dir: str, token: str) -> None:
    """Kills only the processes of this cluster (`ray stop` would kill every Ray on the host)."""
    deadline = time.monotonic() + 10
    while pids := cluster_pids(temp_dir, token):  # again: a process may spawn another while we kill
        if time.monotonic() > deadline:
            raise AssertionError(f"the Ray cluster in {temp_dir} left processes behind: {pids}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


@contextlib.contextmanager
def start_ray_head(num_cpus: int = 2) -> Iterator[RayHead]:
    temp_dir = tempfile.mkdtemp(prefix="rayhead-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    token = secrets.token_hex(16)
    # Every port Ray would otherwise take from a fixed default (client server 10001, dashboard agent 52365, ...):
    # another Ray on the host (a parallel test run) holding one of them stops this head's job agent from starting.
    gcs, dashboard, client, agent_http, agent_grpc, runtime_env, metrics, node_manager, object_manager = free_ports(9)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    try:
        start = subprocess.run(
            [str(BIN / "ray"), "start", "--head", f"--temp-dir={temp_dir}", f"--num-cpus={num_cpus}",
             f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
             f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}",
             f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
             f"--metrics-export-port={metrics}", f"--node-manager-port={node_manager}",
             f"--object-manager-port={object_manager}", "--disable-usage-stats"],
            env=env, capture_output=True, text=True, timeout=180)
        assert start.returncode == 0, start.stderr[-2000:]
        yield RayHead(f"http://127.0.0.1:{dashboard}", token, temp_dir, env)
    finally:
        stop_cluster(temp_dir, token)
        shutil.rmtree(temp_dir, ignore_errors=True)


def run_when_agent_is_up(command: list[str], wait_s: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Runs a job-submitting command, again while the head's job agent is still coming up (it starts a little
    after `ray start` returns and answers 'No available agent to submit job' until then), for up to wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        result = subprocess.run(command, capture_output=True, text=True, **kwargs)
        if "No available agent to submit job" not in result.stdout + result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(2)
