"""The play server's web layer (aiohttp): the page, its static files and one WebSocket per page.

    app = make_app(world, token=None, loopback=True)     # GET / (the page), GET /static/<file>, GET /ws
    await serve(app, host="127.0.0.1", port=8765)        # -> the URL it listens on

Everything else is in the library modules: PlayConnection speaks the protocol and runs the generation loop.
Access: bound to loopback, anyone on this machine may play and no token is needed, but the Host header must
name a loopback address (a page of another site that resolves its name to 127.0.0.1 gets 403: DNS
rebinding). Bound to any other address a token is required (make_app refuses to start without one; it may
be given on loopback too): every request needs it, as ?token=... on the URL (the page then keeps it in an
HttpOnly cookie for its own requests), compared in constant time. A WebSocket whose
Origin is another site than the page's gets 403 either way, so a page elsewhere cannot drive the world.
"""

from __future__ import annotations

import hmac
import ipaddress
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from system.imagination.acting_service import SlotsExhausted
from system.play.connection import PlayConnection
from system.play.world import PlayWorld

WORLD = web.AppKey("world", PlayWorld)
TOKEN = web.AppKey("token", str)
LOOPBACK = web.AppKey("loopback", bool)
TOKEN_COOKIE = "play_token"
MAX_MESSAGE_BYTES = 64 * 1024     # client messages are small JSON objects
STATIC = {"index.html": "text/html", "play.js": "text/javascript", "play.css": "text/css"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_ok(request: web.Request) -> bool:
    token = request.app[TOKEN]
    given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
    return hmac.compare_digest(given.encode(), token.encode())


@web.middleware
async def guard(request: web.Request, handler):
    if request.app[LOOPBACK] and not is_loopback(urlsplit(f"//{request.host}").hostname or ""):
        raise web.HTTPForbidden(text=f"this play server answers to loopback addresses only, not {request.host!r}")
    if request.app[TOKEN] and not token_ok(request):
        raise web.HTTPUnauthorized(text="this play server needs its token: open the URL it printed (.../?token=...)")
    origin = request.headers.get("Origin")
    if request.path == "/ws" and origin is not None and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(text=f"WebSocket from another site ({origin}) refused")
    response = await handler(request)
    if request.app[TOKEN] and "token" in request.query:
        response.set_cookie(TOKEN_COOKIE, request.query["token"], httponly=True, samesite="Strict")
    return response


def static_file(name: str) -> bytes:
    return resources.files("system.play").joinpath("static", name).read_bytes()


async def page(request: web.Request) -> web.Response:
    return web.Response(body=static_file("index.html"), content_type=STATIC["index.html"],
                        headers={"Cache-Control": "no-store"})


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    return web.Response(body=static_file(name), content_type=STATIC[name], headers={"Cache-Control": "no-store"})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30.0)
    await ws.prepare(request)
    try:
        connection = PlayConnection(request.app[WORLD], ws.send_str, ws.send_bytes)
    except SlotsExhausted as problem:
        await ws.send_json({"type": "error", "message": str(problem)})
        await ws.close()
        return ws
    try:
        await connection.send_hello()
        connection.start_loop()
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await connection.handle_text(message.data)
            elif message.type == WSMsgType.BINARY:
                await connection.error("binary messages are not understood: send JSON text messages")
    finally:
        await connection.close()
    return ws


def make_app(world: PlayWorld, token: str | None = None, loopback: bool = True) -> web.Application:
    if not loopback and not token:
        raise ValueError("a play server on a non-loopback address needs a token")
    app = web.Application(middlewares=[guard])
    app[WORLD], app[TOKEN], app[LOOPBACK] = world, token or "", loopback
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/ws", websocket)
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Starts listening; returns the runner (await runner.cleanup() to stop) and the port bound (port 0: any)."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
