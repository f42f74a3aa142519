"""`python -m system.play`: an unplayable run exits 1 naming the path, off loopback a token is required, and
end to end the command serves a page that a real headless Chromium plays: frames arrive, keys steer, the K
slider and pause work."""

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from system.play.cli import access_token, main
from tests.helpers.browser import browser_missing, chromium_page
from tests.helpers.play_run import tiny_run

ROOT = Path(__file__).resolve().parents[2]


def test_an_unplayable_run_or_a_taken_port_exits_1_saying_why(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 1
    assert f"play: {tmp_path / 'nowhere'}: no such run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])                                   # neither a run nor --checkpoint
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([str(tiny_run(tmp_path / "run")), "--port", str(port)]) == 1
    assert f"play: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_token_is_required_off_loopback_and_generated_when_not_given():
    assert access_token("127.0.0.1", None) is None and access_token("localhost", None) is None
    assert access_token("::1", "given") == "given"
    generated = {access_token("0.0.0.0", None) for _ in range(2)}
    assert len(generated) == 2 and all(len(token) >= 32 for token in generated)
    assert access_token("192.0.2.7", "mine") == "mine"


def served_url(process: subprocess.Popen, timeout: float = 120.0) -> str:
    """The URL the command prints once it listens (its output read on a thread: a pipe read can block)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline and process.poll() is None:
        try:
            seen.append(lines.get(timeout=1.0))
        except queue.Empty:
            continue
        if match := re.search(r"open (http://\S+)", seen[-1]):
            return match.group(1)
    raise AssertionError(f"the play command printed no URL: {''.join(seen)}")


@pytest.mark.slow
@pytest.mark.skipif(browser_missing() is not None, reason=f"no headless browser: {browser_missing()}")
def test_the_command_serves_a_page_that_a_browser_plays(tmp_path):
    run = tiny_run(tmp_path / "run")
    process = subprocess.Popen(
        [sys.executable, "-m", "system.play", str(run), "--port", "0", "--max-fps", "0", "--held-out", "1",
         "--threads", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = served_url(process)
        with chromium_page() as page:
            page.goto(url)
            page.wait_for_function("window.playStats.generated >= 2", timeout=60_000)   # auto-started, playing
            assert page.locator("#legend tbody tr").count() == 16
            assert "move_right" in page.inner_text("#legend")
            page.keyboard.down("d")                                                       # KeyD: move_right
            page.wait_for_function("window.playStats.header.action[0] === 2", timeout=30_000)
            page.keyboard.up("d")
            page.wait_for_function("window.playStats.header.action[0] === 0", timeout=30_000)   # noop again
            page.eval_on_selector("#k", "k => { k.value = '0'; k.dispatchEvent(new Event('input')); }")
            page.wait_for_function("window.playStats.header.k === 1", timeout=30_000)
            assert page.inner_text("#k-value") == "1"
            page.click("#pause")
            page.wait_for_function("document.getElementById('pause').textContent === 'Resume'", timeout=30_000)
            page.wait_for_timeout(300)                      # a frame already under way may still land
            frames = page.evaluate("window.playStats.generated")
            page.wait_for_timeout(700)
            assert page.evaluate("window.playStats.generated") == frames
            page.click("#step")
            page.wait_for_function(f"window.playStats.generated === {frames + 1}", timeout=30_000)
            assert re.fullmatch(r"\d+\.\d frames/s", page.inner_text("#fps"))
            assert page.evaluate("window.playStats.errors") == []
    finally:
        process.terminate()
        process.wait(timeout=30)
