"""Redis failures as ReplayErrors that name the server and say what to do, never a raw redis traceback.

    with redis_errors(where, cfg, f"sampling table 'real'"):
        client.evalsha(...)
    with redis_errors(where, cfg, "adding 16 chunks to table 'real'", unacknowledged=True):
        pipe.execute()          # a lost reply raises NotAcknowledged: the chunks may or may not be stored

In: any redis-py exception raised inside the block. Out: a ReplayError with the server's address (never its
password), what the store was doing, and the likely fix:
- refused, unreachable, or the connection lost mid-run: is the server running, is replay.url right;
- no answer within replay.socket_timeout_s (a frozen, overloaded or partitioned server);
- authentication: the password variable (replay.password_env);
- loading: the server is replaying its append-only file after a restart;
- "CORRUPT <key>: ..." from the Lua scripts: a key that something other than the store wrote, named;
- out of memory under noeviction, a read-only replica, a long-running script.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

from system.replay.config import ReplayConfig
from system.replay.store import NotAcknowledged, ReplayError

_CORRUPT = re.compile(r"CORRUPT (.*?)(?: script: \w+, on @user_script:\d+\.)?$", re.DOTALL)


def redact(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def describe(client: redis.Redis) -> str:
    """redis://host:port/db of a client (rediss:// with TLS), built from its settings, so no password."""
    kwargs = client.get_connection_kwargs()
    scheme = "rediss" if "ssl" in client.connection_pool.connection_class.__name__.lower() else "redis"
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


@contextmanager
def redis_errors(where: str, cfg: ReplayConfig, doing: str, unacknowledged: bool = False, connecting: bool = False):
    """Translates redis-py exceptions raised inside the block (see the module docstring)."""
    try:
        yield
    except redis.RedisError as error:
        raise translate(error, where, cfg, doing, unacknowledged, connecting) from None


def translate(error: redis.RedisError, where: str, cfg: ReplayConfig, doing: str, unacknowledged: bool = False,
              connecting: bool = False) -> ReplayError:
    text = str(error)
    waited = f"replay.socket_timeout_s = {cfg.socket_timeout_s:g} s" + (
        f" (x {1 + cfg.retries} tries, replay.retries = {cfg.retries})" if cfg.retries else "")
    lost = ("; it may or may not have been stored: adding the same chunks again is safe (a stored "
            "(episode_id, step_offset) is never stored twice)") if unacknowledged else ""
    kind = NotAcknowledged if unacknowledged else ReplayError
    if isinstance(error, redis.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return ReplayError(f"Redis at {where} refused the credentials while {doing} ({text}): set the password in "
                           f"${cfg.password_env} (or in the URL)")
    if isinstance(error, redis.BusyLoadingError):
        return ReplayError(f"Redis at {where} is still loading its data (after a restart) while {doing}: retry when "
                           "it has finished; a large append-only file takes a while")
    if isinstance(error, redis.TimeoutError):
        return kind(f"Redis at {where} did not answer within {waited} while {doing}{lost}. The server is frozen, "
                    "overloaded or unreachable: check it (redis-cli -u URL ping); raise replay.socket_timeout_s "
                    "only if it is just slow")
    if isinstance(error, redis.ConnectionError):
        if connecting:
            return ReplayError(f"cannot reach Redis at {where}: {text}. Is the server running, and are replay.url / "
                               f"${cfg.url_env} right?")
        return kind(f"lost the connection to Redis at {where} while {doing} ({text}){lost}. Is the server still "
                    "running (a restart or a crash)? Check it, then run again")
    match = _CORRUPT.match(text)
    if match:
        return ReplayError(f"{match.group(1)}, met while {doing} on Redis at {where}: something other than the "
                           "replay store wrote this key, or it is corrupted. Delete the table's keys, or use another "
                           "replay.key_prefix")
    if text.startswith("OOM"):
        return ReplayError(f"Redis at {where} is out of memory while {doing} ({text}): the tables' capacity_steps "
                           "need more memory than its maxmemory; lower replay.tables.<table>.capacity_steps or give "
                           "Redis more memory")
    if text.startswith("READONLY"):
        return ReplayError(f"Redis at {where} is a read-only replica ({text}): point replay.url at the primary")
    if text.startswith("BUSY"):
        return ReplayError(f"Redis at {where} is busy running a long script while {doing} ({text}); retry, or "
                           "check what else runs scripts on it")
    return ReplayError(f"Redis at {where} failed while {doing}: {type(error).__name__}: {text}")
