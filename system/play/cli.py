"""`python -m system.play RUN_DIR [options]`: serves the play page for a run's world model and prints its URL.

    python -m system.play runs/smoke-20261207                      # http://127.0.0.1:8765/
    python -m system.play --checkpoint runs/x/checkpoints/dynamics.pt --port 0      # any free port
    python -m system.play runs/x --host 0.0.0.0                    # other machines: a token is generated and
                                                                   # printed in the URL (or give --token)

Exit status 1 with the reason (naming the path) when the run directory or checkpoint cannot be played.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

import torch

from system.play.frame_codec import IMAGE_FORMATS
from system.play.run_models import RunError
from system.play.server import is_loopback, make_app, serve
from system.play.slots import cache_bytes
from system.play.world import open_world


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m system.play", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", help="the run directory (runs/<name>) with config.yaml and checkpoints/")
    parser.add_argument("--checkpoint", help="the dynamics checkpoint to play (default: the run's newest of "
                                             "imagination.pt with the model, agent.pt, dynamics.pt)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; any other needs "
                                                             "the token)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free one)")
    parser.add_argument("--token", help="the access token (off loopback: generated and printed when not given)")
    parser.add_argument("--slots", type=int, default=4, help="KV-cache slots: pages that can play at once")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--context-frames", type=int, help="real frames a world starts from (default: the run's "
                                                           "dynamics.eval_context)")
    parser.add_argument("--held-out", type=int, default=8, help="held-out episodes offered as starts")
    parser.add_argument("--image-format", choices=sorted(IMAGE_FORMATS), default="png")
    parser.add_argument("--max-fps", type=float, default=15.0, help="the page's default frame-rate cap (0: none)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.run_dir is None and args.checkpoint is None:
        parser.error("give a run directory or --checkpoint")
    return args


def access_token(host: str, token: str | None) -> str | None:
    """The token the server requires: the one given, else none on loopback and a fresh random one elsewhere."""
    if token or is_loopback(host):
        return token or None
    return secrets.token_urlsafe(24)


async def run_server(args, say=print) -> None:
    world, models = open_world(args.run_dir, args.checkpoint, args.slots, args.device, args.context_frames,
                               args.held_out, args.image_format, args.max_fps)
    try:
        token = access_token(args.host, args.token)
        runner, port = await serve(make_app(world, token, is_loopback(args.host)), args.host, args.port)
        try:
            host = f"[{args.host}]" if ":" in args.host else args.host
            url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
            slot_kib = cache_bytes(world.slots.caches[0]) / 1024
            say(f"play: {models.run_dir} ({models.cfg.env.name}, dynamics from {models.checkpoint.name}), "
                f"{args.slots} slots of {slot_kib:.0f} KiB, K in {world.k_choices}")
            say(f"play: open {url}", flush=True)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    finally:
        world.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        asyncio.run(run_server(args))
    except (RunError, ValueError, FileNotFoundError) as problem:
        print(f"play: {problem}", file=sys.stderr)
        return 1
    except OSError as problem:   # the address is taken or cannot be bound
        print(f"play: cannot listen on {args.host}:{args.port}: {problem.strerror or problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
