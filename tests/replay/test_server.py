"""The local redis-server is tied to the process that started it: it dies with it (kill -9 included), it is not
in the terminal's process group (Ctrl-C reaches only the parent, which then stops it cleanly), and a data
directory that a live server holds is refused with its PID. Each test runs a real parent process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from system.replay import ReplayError
from system.replay.server import LocalRedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]

# A parent that starts a server, prints the server's PID, then waits; on Ctrl-C it shuts down cleanly, taking
# its time, and uses the server on the way (a final write), as a job that saves its state would.
PARENT = """
import sys, time
from system.replay.server import LocalRedisServer
server = LocalRedisServer(sys.argv[1]).start()
try:
    print(server.process.pid, flush=True)
    time.sleep(120)
except KeyboardInterrupt:
    time.sleep(0.5)
    server.client(socket_timeout=2).set("written-after-ctrl-c", 1)
    server.stop()
    print("stopped cleanly", flush=True)
"""


@pytest.fixture
def start_parent(sigint_reaches_children):
    """start_parent(directory) -> (parent process, server pid); whatever a test leaves running is killed after it."""
    started = []

    def start(directory: Path) -> tuple[subprocess.Popen, int]:
        # A session of its own, as a shell gives a foreground job: Ctrl-C is SIGINT to that process group.
        parent = subprocess.Popen([sys.executable, "-c", PARENT, str(directory)], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        started.append([parent])
        line = parent.stdout.readline()
        assert line.strip().isdigit(), parent.stderr.read()
        started[-1].append(int(line))
        return parent, int(line)

    yield start
    for parent, *server in started:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in server:  # a server that outlived its parent (the defect these tests catch)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its exit status waits to be collected


def wait_until_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_server_dies_with_its_parent_even_under_kill_9(tmp_path, start_parent):
    parent, server_pid = start_parent(tmp_path / "redis")
    assert alive(server_pid)
    parent.kill()  # SIGKILL: no handler, no atexit, no finally runs in the parent
    parent.wait()
    assert wait_until_dead(server_pid), "the server outlived its parent"
    LocalRedisServer(tmp_path / "redis").start().stop()  # the directory is free again


def test_ctrl_c_reaches_the_parent_not_the_server(tmp_path, start_parent):
    parent, server_pid = start_parent(tmp_path / "redis")
    assert os.getpgid(server_pid) != os.getpgid(parent.pid), "the server sits in the terminal's process group"
    os.killpg(parent.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    out, err = parent.communicate(timeout=30)
    assert parent.returncode == 0 and "stopped cleanly" in out, err
    assert wait_until_dead(server_pid)
    server = LocalRedisServer(tmp_path / "redis").start()  # the write after Ctrl-C reached the AOF
    try:
        assert server.client().get("written-after-ctrl-c") == b"1"
    finally:
        server.stop()


def test_a_directory_held_by_a_live_server_is_refused_naming_it_and_the_pid(tmp_path, start_parent):
    directory = tmp_path / "redis"
    parent, server_pid = start_parent(directory)
    try:
        with pytest.raises(ReplayError, match=rf"{directory} is in use by a live redis-server \(pid {server_pid}, "
                                              rf"started by pid {parent.pid}\)"):
            LocalRedisServer(directory).start()
        assert alive(server_pid), "the refused start left the running server alone"
    finally:
        parent.kill()
        parent.wait()
    assert wait_until_dead(server_pid)


def test_a_second_server_in_the_same_process_is_refused_too(tmp_path):
    server = LocalRedisServer(tmp_path / "redis").start()
    try:
        with pytest.raises(ReplayError, match=rf"in use by a live redis-server \(pid {server.process.pid}"):
            LocalRedisServer(tmp_path / "redis").start()
    finally:
        server.stop()
    LocalRedisServer(tmp_path / "redis").start().kill()  # stop() and kill() both release the directory
    LocalRedisServer(tmp_path / "redis").start().stop()


# Holds <dir>/server.lock as a server whose starter has died would while it shuts down: the lock names a live
# server pid (its own) and a starter pid that has exited; it lets go after argv[3] seconds.
ORPHAN = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], "server.lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"redis-server (pid {os.getpid()}, started by pid {sys.argv[2]})\\n".encode(), 0)
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
"""


def exited_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_a_server_shutting_down_after_its_starter_died_is_waited_for_not_refused(tmp_path):
    # A resume right after a crash: the driver is gone, its server is still flushing on the parent-death SIGTERM.
    directory = tmp_path / "redis"
    directory.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", ORPHAN, str(directory), str(exited_pid()), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        begun = time.monotonic()
        LocalRedisServer(directory).start().stop()
        assert time.monotonic() - begun > 1.0, "started while the old server still held the directory"
    finally:
        holder.kill()
        holder.wait()


def test_an_orphaned_server_that_never_exits_is_refused_after_the_grace_naming_it(tmp_path, monkeypatch):
    import system.replay.server as server_module
    monkeypatch.setattr(server_module, "ORPHAN_SHUTDOWN_S", 0.5)
    directory = tmp_path / "redis"
    directory.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", ORPHAN, str(directory), str(exited_pid()), "60"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(ReplayError, match=rf"live redis-server \(pid {holder.pid}, started by pid \d+\) whose "
                                              r"starter has exited, still running after 0.5 s"):
            LocalRedisServer(directory).start()
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
