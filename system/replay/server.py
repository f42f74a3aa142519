"""Starts a local redis-server for one run: loopback only, a generated password, AOF in the run directory.

    server = LocalRedisServer(run_dir / "redis", appendfsync="everysec").start()
    server.url, server.password   # hand these to clients (the password also lies in <dir>/password, mode 0600)
    server.stop()                 # SIGTERM, Redis flushes the AOF;  server.kill() is kill -9 (tests)

The configuration is written to <dir>/redis.conf (mode 0600, so the password never shows up in `ps`).
Restarting on the same directory reuses the password and reloads the AOF, which is how a run resumes.
`maxmemory-policy noeviction`: Redis never drops keys behind the store's back; the store evicts FIFO itself.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from system.replay.store import ReplayError

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRedisServer:
    def __init__(self, directory: str | Path, port: int | None = None, appendfsync: str = "everysec",
                 appendonly: bool = True, binary: str = "redis-server"):
        self.directory = Path(directory).resolve()
        self.port = port
        self.appendfsync = appendfsync
        self.appendonly = appendonly  # False: memory only, nothing survives a restart
        self.binary = binary
        self.process: subprocess.Popen | None = None
        self.password = ""

    @property
    def url(self) -> str:
        """Connection URL without the password (pass the password separately)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kwargs)

    def start(self) -> "LocalRedisServer":
        path = shutil.which(self.binary)
        if path is None:
            raise ReplayError(f"{self.binary} is not installed: run scripts/install-redis.sh (Debian package "
                              "redis-server), set replay.url to an existing server, or use replay.backend=embedded")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.password = self._load_or_create_password()
        for attempt in range(3):  # a free port can be taken between probing and binding: try another
            port = self.port or free_port()
            self._write_config(port)
            log = self.directory / "redis.log"
            log_start = log.stat().st_size if log.exists() else 0
            self.process = subprocess.Popen([path, str(self.directory / "redis.conf")], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.port = port
            if self._wait_ready():
                return self
            tail = log.read_text(errors="replace")[log_start:][-2000:] if log.exists() else ""
            self.stop()
            if "Address already in use" not in tail or attempt == 2:
                raise ReplayError(f"redis-server did not start in {self.directory} (log {log}):\n{tail}")
            self.port = None
        raise AssertionError("unreachable")

    def _load_or_create_password(self) -> str:
        path = self.directory / "password"
        if path.exists():
            return path.read_text().strip()
        password = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        return password

    def _write_config(self, port: int) -> None:
        lines = [
            "bind 127.0.0.1 -::1", f"port {port}", "protected-mode yes", f'requirepass "{self.password}"',
            f'dir "{self.directory}"', 'logfile "redis.log"', "daemonize no",
            f"appendonly {'yes' if self.appendonly else 'no'}", f"appendfsync {self.appendfsync}",
            'save ""',  # AOF only, no RDB snapshots
            "maxmemory-policy noeviction",
            "aof-load-truncated yes",  # a crash mid-write drops only the unfinished last transaction
        ]
        path = self.directory / "redis.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.client(socket_timeout=1.0)
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if client.ping():
                        return True
                except redis.BusyLoadingError:
                    pass  # still replaying the AOF
                except redis.ConnectionError:
                    pass  # not listening yet
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (Redis fsyncs the AOF on SIGTERM)."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """kill -9: what a machine or container losing the process looks like."""
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
