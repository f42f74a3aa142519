"""The play server in-process with real WebSocket clients (aiohttp): connections never mix and their frames
are the cached sampler's, a bad message gets an error frame and the connection goes on, a disconnect gives the
slot back, the token is required off loopback, other sites are refused.

One PlayWorld for the module: tiny in-memory models, the smoke config's held-out Crafter worlds as starts
(conftest.py: held-out world 0 is generated once and kept), 2 slots, no frame-rate cap."""

import asyncio
import json

import aiohttp
import numpy as np
import pytest

from system.envs.action_space import crafter_action_space
from system.imagination.generation import GenerationConfig
from system.play.controls import CrafterControls
from system.play.frame_codec import decode_image, parse_frame_message
from system.play.server import make_app, serve
from system.play.slots import SlotPool
from system.play.world import PlayWorld
from tests.helpers.dynamics import one_thread  # noqa: F401 (autouse fixture)
from tests.helpers.play_run import sampler_frames, tiny_play_models

TIMEOUT = 60.0
MOVE_LEFT, MOVE_RIGHT, NOOP = 1, 2, 0


@pytest.fixture(scope="module")
def world(crafter_starts):
    tokenizer, dynamics = tiny_play_models(seed=0)
    world = PlayWorld(tokenizer, dynamics, GenerationConfig(sampling_steps=4, context_noise=0.1),
                      CrafterControls(crafter_action_space()), crafter_starts, SlotPool(dynamics, slots=2),
                      "crafter", max_fps=0)
    yield world
    world.close()


class Client:
    """One page's socket: JSON messages out, text and frame messages in, in order."""

    def __init__(self, ws):
        self.ws, self.frames = ws, []

    async def send(self, **message):
        await self.ws.send_str(json.dumps(message))

    async def receive(self):
        message = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
        if message.type == aiohttp.WSMsgType.TEXT:
            return json.loads(message.data)
        if message.type == aiohttp.WSMsgType.BINARY:
            header, image = parse_frame_message(message.data)
            return {"type": "frame", "header": header, "image": decode_image(image)}
        return {"type": message.type.name.lower()}

    async def expect(self, kind: str) -> dict:
        """The next message of `kind`; frames before it are kept in self.frames, anything else is a failure."""
        while True:
            message = await self.receive()
            if message["type"] == kind:
                return message
            assert message["type"] == "frame", f"expected {kind}, got {message}"
            self.frames.append(message)

    async def generated(self, count: int) -> list[dict]:
        """The next `count` generated (not context) frames; started and state messages in between are skipped."""
        out = []
        while len(out) < count:
            message = await self.receive()
            assert message["type"] in ("frame", "state", "started"), message
            if message["type"] == "frame" and not message["header"]["context"]:
                out.append(message)
        return out


async def with_server(world, scenario, token=None, loopback=True):
    runner, port = await serve(make_app(world, token, loopback), "127.0.0.1", 0)
    try:
        # unsafe: keep cookies of an IP-address host, as browsers do (aiohttp's jar drops them by default)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            return await scenario(http, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def connect(http, url) -> Client:
    client = Client(await http.ws_connect(url + "/ws"))
    hello = await client.expect("hello")
    client.hello = hello
    return client


def reference(world, start, seed, headers):
    """What the cached sampler gives for the actions and K the frame headers report."""
    context = world.starts.context(start, seed)
    return sampler_frames(world.tokenizer, world.dynamics, context.frames, context.actions, seed,
                          [h["action"] for h in headers], [h["k"] for h in headers])


def test_two_connections_playing_at_once_never_mix_and_send_the_samplers_frames(world):
    """Same start and seed, different held keys, both worlds running at once (their frames interleave on the
    compute thread), K changed mid-play on one: each connection's frames are exactly the cached sampler's for
    its own actions and not the other's."""
    async def scenario(http, url):
        left, right = await connect(http, url), await connect(http, url)
        assert {left.hello["slot"], right.hello["slot"]} == {0, 1}
        await left.send(type="key", code="KeyA", down=True)
        await right.send(type="key", code="KeyD", down=True)
        for client in (left, right):
            await client.send(type="start", start="held_out:0", seed=11)
        for client in (left, right):
            started = await client.expect("started")
            assert started["seed"] == 11 and started["context_frames"] == 3
        first_left = await left.generated(2)
        await left.send(type="k", k=1)
        frames_right = await right.generated(4)
        frames_left = first_left + await left.generated(3)
        return frames_left, frames_right

    frames_left, frames_right = asyncio.run(with_server(world, scenario))
    headers_left = [f["header"] for f in frames_left]
    headers_right = [f["header"] for f in frames_right]
    assert all(h["action"] == [MOVE_LEFT] for h in headers_left)
    assert all(h["action"] == [MOVE_RIGHT] for h in headers_right)
    assert [h["frame"] for h in headers_left] == [3, 4, 5, 6, 7] and headers_left[-1]["k"] == 1
    played_left = np.stack([f["image"] for f in frames_left])
    played_right = np.stack([f["image"] for f in frames_right])
    own_left, own_right = reference(world, "held_out:0", 11, headers_left), reference(world, "held_out:0", 11,
                                                                                     headers_right)
    # PNG is lossless: the same computation on the same thread gives the same bytes
    assert np.array_equal(played_left, own_left) and np.array_equal(played_right, own_right)
    # and the other connection's actions would have given other frames
    other = reference(world, "held_out:0", 11, [{**h, "action": [MOVE_RIGHT]} for h in headers_left])
    assert np.abs(played_left.astype(int) - other.astype(int)).max() > 3


def test_bad_messages_get_an_error_frame_and_the_connection_stays_usable(world):
    bad = [
        ("this is not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"type": "fly"}', "unknown message type 'fly'"),
        ('{"type": "key", "code": "KeyZ", "down": true}', "key 'KeyZ' controls nothing"),
        ('{"type": "key", "code": "KeyW"}', "'key' needs 'down'"),
        ('{"type": "mouse", "dx": 1, "dy": 2}', "no mouse look"),
        ('{"type": "k", "k": 3}', "must be one of [1, 2, 4, 8, 16]"),
        ('{"type": "k", "k": "4"}', "got '4'"),
        ('{"type": "max_fps", "fps": -1}', "must lie in [0, 240]"),
        ('{"type": "start", "start": "held_out:9"}', "unknown start 'held_out:9'"),
        ('{"type": "start", "start": "held_out:0", "seed": -3}', "seed must be an integer"),
        ('{"type": "reset"}', "before any 'start'"),
        ('{"type": "step"}', "send 'pause' first"),
    ]

    async def scenario(http, url):
        client = await connect(http, url)
        errors = []
        for text, _ in bad:
            await client.ws.send_str(text)
            errors.append((await client.expect("error"))["message"])
        await client.ws.send_bytes(b"\x00\x01")
        errors.append((await client.expect("error"))["message"])
        # still usable: a paused start, a step with a key held, a frame
        await client.send(type="pause")
        assert (await client.expect("state"))["paused"] is True
        await client.send(type="start", start="held_out:0", seed=3)
        await client.expect("started")
        await client.send(type="key", code="Space", down=True)
        await client.send(type="step")
        [frame] = await client.generated(1)
        return errors, frame

    errors, frame = asyncio.run(with_server(world, scenario))
    for (text, phrase), message in zip(bad, errors):
        assert phrase in message, (text, message)
    assert "binary messages are not understood" in errors[-1]
    assert frame["header"]["action"] == [5] and frame["image"].shape == (64, 64, 3)   # 5: do


def test_reset_replays_the_same_world_and_pause_stops_the_frames(world):
    async def scenario(http, url):
        client = await connect(http, url)
        await client.send(type="pause")
        await client.expect("state")
        await client.send(type="start", start="held_out:0", seed=4)
        await client.expect("started")
        episodes = []
        for _ in range(2):
            for _ in range(3):
                await client.send(type="step")
            episodes.append(await client.generated(3))
            await client.send(type="reset")
            await client.expect("started")
        assert (await client.receive())["header"]["context"] is True    # the reset's start frame
        # paused: nothing more arrives until asked
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.ws.receive(), 0.5)
        return episodes

    first, again = asyncio.run(with_server(world, scenario))
    assert [f["header"]["frame"] for f in first] == [3, 4, 5]
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, again))
    assert first[0]["header"]["episode"] + 1 == again[0]["header"]["episode"]


def test_a_disconnect_gives_the_slot_back_also_while_frames_are_generated(world):
    async def scenario(http, url):
        first, second = await connect(http, url), await connect(http, url)
        assert world.slots.free_count == 0
        third = await http.ws_connect(url + "/ws")
        refused = json.loads((await third.receive(timeout=TIMEOUT)).data)
        closed = await third.receive(timeout=TIMEOUT)
        await first.send(type="start", start="held_out:0", seed=1)
        await first.generated(2)                     # the world is running when the page goes away
        await first.ws.close()
        for _ in range(200):
            if world.slots.free_count == 1:
                break
            await asyncio.sleep(0.05)
        freed = world.slots.free_count
        again = await connect(http, url)             # the freed slot serves a new page
        await second.ws.close()
        await again.ws.close()
        for _ in range(200):
            if world.slots.free_count == 2:
                break
            await asyncio.sleep(0.05)
        return refused, closed.type, freed, again.hello["slot"], first.hello["slot"]

    refused, closed, freed, again_slot, first_slot = asyncio.run(with_server(world, scenario))
    assert "all 2 play slots are in use" in refused["message"] and closed == aiohttp.WSMsgType.CLOSE
    assert freed == 1 and again_slot == first_slot
    assert world.slots.free_count == 2


def test_off_loopback_every_request_needs_the_token(world):
    async def scenario(http, url):
        statuses = {}
        for name, path in [("page", "/"), ("wrong", "/?token=nope"), ("script", "/static/play.js")]:
            async with http.get(url + path) as response:
                statuses[name] = response.status
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url + "/ws")
        statuses["ws"] = refused.value.status
        async with http.get(url + "/?token=s3cret") as response:
            statuses["with token"] = response.status
            page = await response.text()
        async with http.get(url + "/static/play.js") as response:   # the cookie the page got
            statuses["script after"] = response.status
        client = Client(await http.ws_connect(url + "/ws?token=s3cret"))
        hello = await client.expect("hello")
        await client.ws.close()
        return statuses, page, hello

    statuses, page, hello = asyncio.run(with_server(world, scenario, token="s3cret", loopback=False))
    assert statuses == {"page": 401, "wrong": 401, "script": 401, "ws": 401, "with token": 200, "script after": 200}
    assert "<canvas" in page and hello["env"] == "crafter"
    with pytest.raises(ValueError, match="needs a token"):
        make_app(world, token=None, loopback=False)


def test_on_loopback_no_token_but_other_sites_are_refused(world):
    async def scenario(http, url):
        out = {}
        async with http.get(url + "/") as response:
            out["page"] = response.status, "static/play.js" in await response.text()
        async with http.get(url + "/static/play.css") as response:
            out["css"] = response.status, response.content_type
        async with http.get(url + "/static/secrets.txt") as response:
            out["unknown"] = response.status
        async with http.get(url + "/", headers={"Host": "attacker.example:80"}) as response:
            out["rebinding"] = response.status
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url + "/ws", origin="http://attacker.example")
        out["cross-site ws"] = refused.value.status
        client = Client(await http.ws_connect(url + "/ws", origin=url))
        out["same-site ws"] = (await client.expect("hello"))["type"]
        await client.ws.close()
        return out

    out = asyncio.run(with_server(world, scenario))
    assert out == {"page": (200, True), "css": (200, "text/css"), "unknown": 404, "rebinding": 403,
                   "cross-site ws": 403, "same-site ws": "hello"}
