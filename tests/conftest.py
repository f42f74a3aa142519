"""Shared fixtures. Real components only: Crafter frames from the real `crafter` package, a real
redis-server per test, and replay stores of both backends."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from system.replay import ReplayConfig, TableConfig, TablesConfig, make_store
from system.replay.server import LocalRedisServer


def _random_policy_frames(seed: int, steps: int) -> np.ndarray:
    """(steps, 64, 64, 3) uint8 frames of one Crafter world under a uniform random policy (resets on done)."""
    from system.envs.crafter_env import CrafterEnv

    env = CrafterEnv(size=(64, 64), seed=seed)
    rng = np.random.default_rng(seed)
    frames = [env.reset()[0]]
    while len(frames) < steps:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(17)))
        frames.append(env.reset()[0] if terminated or truncated else obs)
    return np.stack(frames)


@pytest.fixture(scope="session")
def crafter_frames():
    """crafter_frames(seed, steps) -> uint8 frames, cached for the whole test session."""
    cache: dict = {}

    def get(seed: int, steps: int) -> np.ndarray:
        if (seed, steps) not in cache:
            cache[seed, steps] = _random_policy_frames(seed, steps)
        return cache[seed, steps]

    return get


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port with a generated password; killed at teardown."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-redis.sh installs it)")
    server = LocalRedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def replay_config(backend: str, url: str = "", max_chunk_bytes: int = 2**20, **table) -> ReplayConfig:
    return ReplayConfig(backend=backend, url=url, block_timeout_s=5.0, max_chunk_bytes=max_chunk_bytes,
                        tables=TablesConfig(real=TableConfig(**table)))


@pytest.fixture
def redis_servers(tmp_path):
    """Three real redis-servers (memory only), each with its own password; killed at teardown."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-redis.sh installs it)")
    servers = [LocalRedisServer(tmp_path / f"redis-{k}", appendonly=False).start() for k in range(3)]
    yield servers
    for server in servers:
        server.kill()


def sharded_url(servers) -> str:
    """replay.url for a table sharded over `servers` (test servers have one password each, so it is in the URL)."""
    return ",".join(f"redis://:{s.password}@127.0.0.1:{s.port}/0" for s in servers)


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("sharded", marks=pytest.mark.redis)])
def make_test_store(request, tmp_path, monkeypatch):
    """Factory of stores of one backend; with redis, every store is a separate client of one server; sharded:
    of a table sharded over three servers (sharded_store.py)."""
    stores = []
    url = ""
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        monkeypatch.setenv("REDIS_PASSWORD", server.password)
        url = server.url
    elif request.param == "sharded":
        url = sharded_url(request.getfixturevalue("redis_servers"))
    shared = {}

    def factory(seed: int = 0, **settings):
        """settings: max_chunk_bytes and the `real` table's TableConfig fields."""
        if not url:
            # The embedded store lives in one process: "another client" is the same object.
            if "store" not in shared:
                shared["store"] = make_store(replay_config("embedded", **settings), tmp_path, seed=seed)
            return shared["store"]
        store = make_store(replay_config("redis", url, **settings), tmp_path, seed=seed)
        stores.append(store)
        return store

    factory.backend = request.param
    yield factory
    for store in stores:
        store.close()


@pytest.fixture(scope="module")
def local_ray():
    """One private local Ray instance per test module (starting Ray costs seconds). Token auth is on: a local
    instance turns it on by itself; RAY_AUTH_MODE comes from the environment (Makefile, .ci/run)."""
    import tempfile

    import ray

    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head():
    """One `ray start --head` per test module (tests/helpers/ray_head.py): own temp dir, own token, auth on;
    only its own processes are stopped at the end."""
    from tests.helpers.ray_head import start_ray_head

    with start_ray_head(num_cpus=2) as head:
        yield head


@pytest.fixture
def sigint_reaches_children():
    """Children start with SIGINT at its default, as a terminal's foreground job does. A shell without job
    control starts background commands with SIGINT ignored, and an ignored signal stays ignored across exec:
    run that way (`make test &` in a script), a Ctrl-C test would otherwise send a signal nobody receives."""
    import signal

    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:  # a handler (not SIG_IGN) resets to the default in an exec'd child
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def tiny_finished_run(tmp_path_factory):
    """One finished run of the tiny main-job config (tests/test_main.py's CONTRACT), shared by the main-job and
    evaluation tests: read only; a test that writes into a run works on a copy."""
    from system.main import run
    from system.run.config import load
    from tests.test_main import CONTRACT

    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    run(load(CONTRACT + [f"run_dir={run_dir}"]))
    return run_dir
