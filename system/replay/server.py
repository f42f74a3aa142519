"""Starts a local redis-server for one run: loopback only, a generated password, AOF in the run directory.

    server = LocalRedisServer(run_dir / "redis", appendfsync="everysec").start()
    server.url, server.password   # hand these to clients (the password also lies in <dir>/password, mode 0600)
    server.stop()                 # SIGTERM, Redis flushes the AOF;  server.kill() is kill -9 (tests)

The configuration is written to <dir>/redis.conf (mode 0600, so the password never shows up in `ps`).
Restarting on the same directory reuses the password and reloads the AOF, which is how a run resumes.
`maxmemory-policy noeviction`: Redis never drops keys behind the store's back; the store evicts FIFO itself.

The server is tied to the process that starts it:
- it dies with it: Linux sends it SIGTERM (a clean shutdown that flushes the AOF) when the parent dies, kill -9
  included (prctl PR_SET_PDEATHSIG, set between fork and exec). The signal follows the thread that forked, so
  a keeper thread that lives as long as the server starts it. Elsewhere than Linux this tie is missing;
- it runs in a session of its own, so the terminal's Ctrl-C (SIGINT to the foreground process group) reaches
  only the parent, which can then finish its work and stop the server;
- <dir>/server.lock is flock'ed for as long as the server or its parent lives (the server inherits the
  descriptor), so a second process can never start a server on the same AOF; it is told who holds it. A child
  forked from the parent (multiprocessing's "fork") inherits the lock too, until it exits. A holder on its way
  out (its starter has died and it is flushing on the parent-death SIGTERM) is waited for, not refused: a resume
  started right after a crash would otherwise race the old server's shutdown.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis

from system.replay.store import ReplayError

START_TIMEOUT_S = 20.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
LOCK_FILE = "server.lock"
LOCK_GRACE_S = 5.0  # how long a lock whose server has exited may take to be released
# how long a server whose starter has died may take to shut down (SIGTERM from the parent-death tie: Redis
# fsyncs the AOF and exits; on a loaded machine that takes seconds, and a resume right after a crash lands in it)
ORPHAN_SHUTDOWN_S = 60.0


def _load_prctl():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the server is not tied to its parent's death


_PRCTL = _load_prctl()  # resolved here: the child between fork and exec should only call it


def _running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (not Linux): existence is all we can tell
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


def _tie_to_parent(parent_pid: int):
    """A preexec_fn: SIGTERM to the child when its parent dies; exits at once if that already happened."""
    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # the parent died before prctl took effect: nobody would stop us
            os._exit(1)
    return preexec


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
        self._lock_fd: int | None = None
        self._released = threading.Event()  # ends the keeper thread once the server is gone

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
        self._lock()
        try:
            self.password = self._load_or_create_password()
            for attempt in range(3):  # a free port can be taken between probing and binding: try another
                port = self.port or free_port()
                self._write_config(port)
                log = self.directory / "redis.log"
                log_start = log.stat().st_size if log.exists() else 0
                self.process = self._spawn([path, str(self.directory / "redis.conf")])
                self._write_lock(f"redis-server (pid {self.process.pid}, started by pid {os.getpid()})")
                self.port = port
                if self._wait_ready():
                    return self
                tail = log.read_text(errors="replace")[log_start:][-2000:] if log.exists() else ""
                self._signal(signal.SIGTERM, 30.0, release=False)
                if "Address already in use" not in tail or attempt == 2:
                    raise ReplayError(f"redis-server did not start in {self.directory} (log {log}):\n{tail}")
                self.port = None
        except BaseException:  # a failed start, or Ctrl-C while waiting for it: leave nothing running
            self._signal(signal.SIGTERM, 30.0)
            raise
        raise AssertionError("unreachable")

    def _lock(self) -> None:
        """Takes <dir>/server.lock, or says which live server holds it.

        Waits instead of refusing while the holder is on its way out: the server has exited but its last
        threads still hold the file (LOCK_GRACE_S), or its starter has died and the server is shutting down on
        the parent-death signal (ORPHAN_SHUTDOWN_S)."""
        path = self.directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "redis-server (starting)"
                server = re.search(r"\(pid (\d+)", holder)
                starter = re.search(r"started by pid (\d+)", holder)
                waited = time.monotonic() - started
                if server and not _running(int(server.group(1))) and waited < LOCK_GRACE_S:
                    time.sleep(0.05)
                    continue
                orphaned = starter is not None and not _running(int(starter.group(1)))
                if orphaned and waited < ORPHAN_SHUTDOWN_S:
                    time.sleep(0.05)
                    continue
                os.close(fd)
                why = (f" whose starter has exited, still running after {ORPHAN_SHUTDOWN_S:g} s (stop it by "
                       "its pid)" if orphaned else "")
                raise ReplayError(f"the redis data directory {self.directory} is in use by a live {holder}{why} "
                                  f"(lock {path}): stop that run first (its server stops with it), or use another "
                                  "run_dir") from None
        self._lock_fd = fd
        self._write_lock(f"redis-server (starting, started by pid {os.getpid()})")

    def _write_lock(self, holder: str) -> None:
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{holder}\n".encode(), 0)

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        """Starts the server from a keeper thread that lives until the server is gone: Linux sends the
        parent-death signal when the thread that forked exits, not only when the process does."""
        started: queue.Queue = queue.Queue(1)
        self._released.clear()

        def keep() -> None:
            try:
                started.put(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, start_new_session=True,
                                             preexec_fn=_tie_to_parent(os.getpid()), pass_fds=(self._lock_fd,)))
            except BaseException as error:  # handed to the caller
                started.put(error)
                return
            self._released.wait()

        threading.Thread(target=keep, name=f"redis-server keeper ({self.directory})", daemon=True).start()
        result = started.get()
        if isinstance(result, BaseException):
            raise result
        return result

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
                except (redis.ConnectionError, redis.TimeoutError):
                    pass  # not listening yet, or too busy to answer within the probe's timeout
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (Redis fsyncs the AOF on SIGTERM); releases the data directory."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """kill -9: what a machine or container losing the process looks like."""
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float, release: bool = True) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(sig)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
            self._released.set()
        if release and self._lock_fd is not None:
            os.close(self._lock_fd)  # the server has exited: nobody holds the directory now
            self._lock_fd = None
