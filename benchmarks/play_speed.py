"""Frames per second of the play server (python -m system.play), without and with a browser attached.

    python -m benchmarks.play_speed                                  # smoke-size random-init models, K = 1 and 4
    python -m benchmarks.play_speed --run runs/smoke-20261207 --ks 1,4,16 --screenshot docs/images/play.png

The server runs in this process on loopback with no frame-rate cap, started from held-out world 0.
- socket: one WebSocket client (aiohttp) plays with no key held; frames/s = generated frames received over
  the timed window after --warmup frames, and the model's own milliseconds per frame (the frame headers'
  `ms`: the K + 1 dynamics passes, the decode and the PNG encode), median. cpu_ms_per_frame is this process's
  CPU time per frame (server and client): on a shared machine it says what an idle core would do
  (1000 / cpu_ms frames/s), where wall-clock frames/s says what the load left.
- browser: headless Chromium (Debian's chromium driven by Playwright, tests/helpers/browser.py) loads the page,
  which draws every frame into its canvas; frames/s = the page's count of drawn frames over the window.
--screenshot writes the page as the browser shows it at the end, paused and reset to the real start frame of
held-out world 0 (PNG).
Without --run, a run directory with random-init checkpoints of configs/smoke.yaml is written to a temporary
folder (speed does not depend on training). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import threading
import time

import aiohttp
import torch

from system.play.frame_codec import parse_frame_message
from system.play.server import make_app, serve
from system.play.world import open_world
from tests.helpers.browser import browser_missing, chromium_page
from tests.helpers.play_run import tiny_run


async def socket_speed(url: str, k: int, warmup: int, seconds: float) -> dict:
    async with aiohttp.ClientSession() as http, http.ws_connect(url.replace("http", "ws") + "ws") as ws:
        await ws.send_json({"type": "max_fps", "fps": 0})
        await ws.send_json({"type": "k", "k": k})
        await ws.send_json({"type": "start", "start": "held_out:0", "seed": 0})
        seen, ms, began = 0, [], None
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            header, _ = parse_frame_message(message.data)
            if header["context"] or header["k"] != k:
                continue
            seen += 1
            if seen == warmup:
                began, cpu = time.perf_counter(), time.process_time()
            elif began is not None:
                ms.append(header["ms"])
                if time.perf_counter() - began >= seconds:
                    break
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"k": k, "frames_per_s": round(len(ms) / elapsed, 2), "model_ms_median": round(statistics.median(ms), 2),
            "cpu_ms_per_frame": round(cpu / len(ms) * 1000, 2), "frames": len(ms)}


def browser_speed(url: str, ks: list[int], k_choices: list[int], warmup: int, seconds: float,
                  screenshot: str | None) -> list[dict]:
    out = []
    with chromium_page(width=1000, height=700) as page:
        page.goto(url)
        page.select_option("#max-fps", "0")
        page.wait_for_function("window.playStats.generated >= 1", timeout=120_000)
        for k in ks:
            page.eval_on_selector("#k", "(slider, i) => { slider.value = String(i); "
                                        "slider.dispatchEvent(new Event('input')); }", k_choices.index(k))
            page.wait_for_function(f"window.playStats.header.k === {k}", timeout=60_000)
            start = page.evaluate("window.playStats.generated")
            page.wait_for_function(f"window.playStats.generated >= {start + warmup}", timeout=120_000)
            first, began, cpu = page.evaluate("window.playStats.generated"), time.perf_counter(), time.process_time()
            page.wait_for_timeout(seconds * 1000)
            frames, elapsed = page.evaluate("window.playStats.generated") - first, time.perf_counter() - began
            out.append({"k": k, "frames_per_s": round(frames / elapsed, 2), "frames": frames,
                        "server_cpu_ms_per_frame": round((time.process_time() - cpu) / max(frames, 1) * 1000, 2),
                        "page_reads": page.inner_text("#fps")})
        if screenshot:   # paused on a world's real start frame: what a random-init model imagines is noise
            page.click("#pause")
            page.wait_for_function("document.getElementById('pause').textContent === 'Resume'", timeout=60_000)
            page.click("#reset")
            page.wait_for_function("window.playStats.header.context === true", timeout=120_000)
            page.screenshot(path=screenshot)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a run directory (default: random-init smoke-size checkpoints)")
    parser.add_argument("--ks", default="1,4", help="K values to time, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window per K and client")
    parser.add_argument("--warmup", type=int, default=5, help="frames before each timed window")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--screenshot", help="write the browser's view of the page here (PNG)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    with tempfile.TemporaryDirectory(prefix="play-speed-") as scratch:
        run_dir = args.run or tiny_run(f"{scratch}/run")
        world, models = open_world(run_dir, slots=2, held_out=1, max_fps=0)
        loop = asyncio.new_event_loop()
        runner, port = loop.run_until_complete(serve(make_app(world), "127.0.0.1", 0))
        server = threading.Thread(target=loop.run_forever, daemon=True)   # serves the browser while we wait
        server.start()
        url = f"http://127.0.0.1:{port}/"
        try:
            socket = [asyncio.run_coroutine_threadsafe(socket_speed(url, k, args.warmup, args.seconds), loop).result()
                      for k in ks]
            missing = browser_missing()
            browser = None if args.no_browser or missing else browser_speed(
                url, ks, world.k_choices, args.warmup, args.seconds, args.screenshot)
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            server.join()
            world.close()
    parameters = sum(p.numel() for p in models.dynamics.parameters())
    print(json.dumps({
        "benchmark": "play_speed", "run": str(args.run or "random-init configs/smoke.yaml"),
        "dynamics_parameters": parameters, "context_window": models.cfg.dynamics.model.transformer.context,
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_1min": round(os.getloadavg()[0], 2), "socket": socket,
        "browser": browser if browser is not None else f"not measured: {missing or '--no-browser'}"}))


if __name__ == "__main__":
    main()
