"""ray_session without a cluster address: a private local instance with token auth, shut down on exit."""

from __future__ import annotations

import os
import tempfile

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
