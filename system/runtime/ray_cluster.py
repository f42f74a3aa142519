"""Ray in the driver: join the cluster of `ray job submit`, or start a private local instance.

    with ray_session(num_cpus=2) as session:   # session.local: True when this process started Ray
        ...

Under `ray job submit` (or with RAY_ADDRESS exported) the driver connects with `ray.init(address="auto")`.
Otherwise it starts a new local instance (`address="local"`: never silently joins some other cluster on the
host) and shuts it down at the end. Token authentication stays on: a local instance started by ray.init turns
it on by itself and writes its token to ~/.ray/auth_token (Ray 2.60). RAY_AUTH_MODE is read when `ray` is
imported, so it is set in the environment of the process (Makefile, .ci/run), never from here. A client of a `ray start --head`
cluster needs RAY_AUTH_MODE=token and the token (that file, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import ray


@dataclass(frozen=True)
class RaySession:
    local: bool          # this process started the instance (and stops it)
    address: str         # the GCS address


def cluster_address() -> str:
    """The address to join, or '' to start a local instance."""
    return os.environ.get("RAY_ADDRESS", "")


@contextlib.contextmanager
def ray_session(num_cpus: int | None = None, temp_dir: str | None = None) -> Iterator[RaySession]:
    if ray.is_initialized():  # an embedding process (a test, a notebook) already brought Ray up
        yield RaySession(local=False, address=ray.get_runtime_context().gcs_address)
        return
    joined = bool(cluster_address())
    if joined:
        context = ray.init(address="auto", log_to_driver=True)
    else:
        context = ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir,
                           log_to_driver=True)
    try:
        yield RaySession(local=not joined, address=context.address_info["gcs_address"])
    finally:
        ray.shutdown()
