"""One browser connection: its messages, its KV-cache slot and its generation loop (no web framework here).

    connection = PlayConnection(world, send_text, send_bytes)    # takes a slot (SlotsExhausted when none)
    await connection.send_hello()
    connection.start_loop()                                      # the generation loop, a task
    await connection.handle_text('{"type": "start", "start": "held_out:0"}')   # each message the client sends
    await connection.close()                                     # ends the loop, then gives the slot back

Client -> server, JSON text messages:
    {"type": "start", "start": "<choice id>", "seed": 7}   a new world from a start choice (seed optional:
                                                           drawn when left out); the world plays unless paused
    {"type": "reset"}                                      the same start and seed again
    {"type": "pause"} / {"type": "resume"}
    {"type": "step"}                                       one frame while paused
    {"type": "k", "k": 4}                                  shortcut sampling steps per frame, one of k_choices
    {"type": "max_fps", "fps": 15}                         frame-rate cap, 0 = none
    {"type": "key", "code": "KeyW", "down": true}          a key (KeyboardEvent.code) or MouseN button
    {"type": "mouse", "dx": 3.0, "dy": -1.5}               mouse movement in pixels (Minecraft camera)
    {"type": "release"}                                    lets go of every key (the page lost focus)
Server -> client:
    text {"type": "hello", ...}      the world: env, legend, start choices, k_choices, k, image format, slot
    text {"type": "started", ...}    a world (re)started: start id, label, seed, context frames
    text {"type": "state", ...}      after pause/resume/k/max_fps: paused, k, max_fps
    text {"type": "error", "message": ...}   a message that could not be used, saying why; the connection
                                             stays open and usable
    binary frames (frame_codec.py): header {"frame", "action", "k", "ms", "episode", "context"} and the image;
    after a start, the last real context frame ("context": true), then each generated frame with the action
    that produced it.

The loop alone touches the session: messages only change cheap state (keys, K, pause, a pending start) and
wake it, so a start never races a frame. Tensor work runs on the world's compute thread, Crafter on its env
thread. close() waits for the frame in progress before the slot is given back, so the next connection to
take the slot never meets a step of the previous one still writing its cache.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable

from system.play.controls import InputState, UnknownControl
from system.play.frame_codec import encode_image, frame_message
from system.play.session import PlaySession
from system.play.start_frames import UnknownStart
from system.play.world import PlayWorld

MESSAGE_TYPES = ("start", "reset", "pause", "resume", "step", "k", "max_fps", "key", "mouse", "release")
MAX_FPS_CAP = 240


class BadMessage(ValueError):
    """A client message that cannot be used; its text goes back in an error frame."""


def _field(message: dict, name: str, kind, what: str):
    value = message.get(name)
    if kind is float:   # JSON numbers, not true/false (bool is an int in Python), not NaN or infinity
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise BadMessage(f"{message['type']!r} needs {name!r}: {what}, got {value!r}")
    return value


class PlayConnection:
    def __init__(self, world: PlayWorld, send_text: Callable[[str], Awaitable],
                 send_bytes: Callable[[bytes], Awaitable]):
        self.world, self.send_text, self.send_bytes = world, send_text, send_bytes
        self.slot, cache = world.slots.acquire()
        self.session = PlaySession(world.tokenizer, world.dynamics, world.generation, cache)
        self.input = InputState(world.controls)
        self.k, self.max_fps = world.default_k, world.max_fps
        self.paused, self.steps_asked, self.closed = False, 0, False
        self.pending: tuple[str, int] | None = None     # (start id, seed) the loop starts next
        self.current: tuple[str, int] | None = None     # what is playing
        self.episode = 0                                 # counts starts and resets
        self.last_frame_at: float | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.released = False

    # -- messages ---------------------------------------------------------------------------------------------
    def hello(self) -> dict:
        world = self.world
        return {"type": "hello", "env": world.env_name, "action_space": world.controls.space.name,
                "legend": world.controls.legend(), "mouse_look": world.controls.mouse_look,
                "starts": [{"id": c.id, "label": c.label} for c in world.starts.choices()],
                "k_choices": world.k_choices, "k": self.k, "max_fps": self.max_fps,
                "image_format": world.image_format, "slot": self.slot}

    async def send_hello(self) -> None:
        await self.send_json(self.hello())

    async def send_json(self, message: dict) -> None:
        await self.send_text(json.dumps(message))

    async def error(self, text: str) -> None:
        await self.send_json({"type": "error", "message": text})

    async def handle_text(self, text: str) -> None:
        """Applies one client message; a bad one gets an error frame and changes nothing."""
        try:
            reply = self.apply(self.parse(text))
        except (BadMessage, UnknownControl, UnknownStart) as problem:
            await self.error(str(problem))
            return
        if reply is not None:
            await self.send_json(reply)
        self.wake.set()

    def parse(self, text: str) -> dict:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as problem:
            raise BadMessage(f"message is not JSON ({problem.msg} at character {problem.pos}): {text[:80]!r}") from None
        if not isinstance(message, dict):
            raise BadMessage(f"message must be a JSON object with a 'type', got {type(message).__name__}")
        kind = message.get("type")
        if kind not in MESSAGE_TYPES:
            raise BadMessage(f"unknown message type {kind!r}; expected one of {', '.join(MESSAGE_TYPES)}")
        return message

    def apply(self, message: dict) -> dict | None:
        kind = message["type"]
        if kind == "start":
            choice = _field(message, "start", str, "a start id from hello's 'starts'")
            if choice not in {c.id for c in self.world.starts.choices()}:
                raise UnknownStart(f"unknown start {choice!r}; choose one of "
                                   f"{', '.join(c.id for c in self.world.starts.choices())}")
            seed = message.get("seed")
            if seed is None:
                seed = secrets.randbelow(2**31)
            elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
                raise BadMessage(f"'start' seed must be an integer in [0, 2^31), got {seed!r}")
            self.pending = (choice, seed)
            return None
        if kind == "reset":
            if self.current is None and self.pending is None:
                raise BadMessage("'reset' before any 'start': start a world first")
            self.pending = self.pending or self.current
            return None
        if kind == "key":
            code = _field(message, "code", str, "a KeyboardEvent.code such as 'KeyW', or Mouse0/Mouse2")
            self.input.key(code, _field(message, "down", bool, "true or false"))
            return None
        if kind == "mouse":
            self.input.move_mouse(_field(message, "dx", float, "a number of pixels"),
                                  _field(message, "dy", float, "a number of pixels"))
            return None
        if kind == "release":
            self.input.release_all()
            return None
        if kind == "step":
            if not self.paused:
                raise BadMessage("'step' generates one frame of a paused world: send 'pause' first")
            if self.current is None and self.pending is None:
                raise BadMessage("'step' before any 'start': start a world first")
            self.steps_asked += 1
            return None
        if kind == "pause":
            self.paused = True
        elif kind == "resume":
            self.paused, self.steps_asked = False, 0
        elif kind == "k":
            k = message.get("k")
            if isinstance(k, bool) or k not in self.world.k_choices:
                raise BadMessage(f"K (sampling steps per frame) must be one of {self.world.k_choices} (the "
                                 f"checkpoint's K_max is {self.world.dynamics.k_max}), got {k!r}")
            self.k = k
        elif kind == "max_fps":
            fps = _field(message, "fps", float, f"frames per second in [0, {MAX_FPS_CAP}], 0 = no cap")
            if not 0 <= fps <= MAX_FPS_CAP:
                raise BadMessage(f"'max_fps' fps must lie in [0, {MAX_FPS_CAP}] (0 = no cap), got {fps!r}")
            self.max_fps = float(fps)
        return {"type": "state", "paused": self.paused, "k": self.k, "max_fps": self.max_fps}

    # -- the generation loop ----------------------------------------------------------------------------------
    def start_loop(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            if self.closed:
                break
            try:
                if self.pending is not None:
                    await self._start(loop, *self.pending)
                elif self.current is not None and (not self.paused or self.steps_asked):
                    await self._frame(loop)
            except ConnectionError:   # the page went away while a message was on its way
                break
            except Exception as problem:   # a failed frame pauses the world and says why instead of going quiet
                self.paused = True
                await self.error(f"generation failed, the world is paused: {problem!r}")
            if (self.current is not None and not self.paused) or self.steps_asked or self.pending is not None:
                self.wake.set()

    async def _start(self, loop, choice: str, seed: int) -> None:
        self.pending, self.current, self.steps_asked = None, None, 0
        try:
            context = await loop.run_in_executor(self.world.envs, self.world.starts.context, choice, seed)
            await loop.run_in_executor(self.world.compute, self.session.start, context.frames, context.actions,
                                       seed, self.k)
        except Exception as problem:   # reported to the page; nothing plays until the next start
            await self.error(f"could not start {choice!r}: {problem}")
            return
        self.current = (choice, seed)
        self.episode += 1
        self.input.take_action()      # drops taps and mouse movement from before the start; held keys stay held
        self.last_frame_at = None
        await self.send_json({"type": "started", "start": choice, "label": context.label, "seed": seed,
                              "context_frames": int(len(context.frames)), "episode": self.episode})
        image = await loop.run_in_executor(self.world.compute, encode_image, context.frames[-1],
                                           self.world.image_format)
        header = {"frame": self.session.t - 1, "action": context.actions[-1].tolist(), "k": self.k, "ms": 0.0,
                  "episode": self.episode, "context": True}
        await self.send_bytes(frame_message(header, image))

    def _generate(self, action, k: int) -> tuple[bytes, float]:
        began = time.perf_counter()
        frame = self.session.step(action, k)
        ms = (time.perf_counter() - began) * 1000.0
        return encode_image(frame, self.world.image_format), ms

    async def _frame(self, loop) -> None:
        if self.max_fps and self.last_frame_at is not None:
            due = self.last_frame_at + 1.0 / self.max_fps
            try:   # sleeps until the frame is due, but a message (pause, close, a key) wakes it early
                await asyncio.wait_for(self.wake.wait(), timeout=max(0.0, due - time.perf_counter()))
                return    # woken: the loop looks at the new state, then comes back here
            except asyncio.TimeoutError:
                pass
        if self.steps_asked:
            self.steps_asked -= 1
        action, k = self.input.take_action(), self.k
        frame_index = self.session.t
        image, ms = await loop.run_in_executor(self.world.compute, self._generate, action, k)
        self.last_frame_at = time.perf_counter()
        header = {"frame": frame_index, "action": action.tolist(), "k": k, "ms": round(ms, 2),
                  "episode": self.episode, "context": False}
        await self.send_bytes(frame_message(header, image))

    async def close(self) -> None:
        """Ends the loop (after the frame in progress) and gives the slot back; safe to call twice."""
        self.closed = True
        self.wake.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        if not self.released:
            self.released = True
            self.world.slots.release(self.slot)
