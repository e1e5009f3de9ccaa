"""The Redis I/O layer of the request path: a pipelined client, a circuit breaker and
the hard bound every call runs under (`BoundedRedis`).

Fail-open. Every call has a hard bound (`timeout`: connect + reply), no retries.
Failures are counted; after `threshold` consecutive ones the circuit breaker
opens and Redis is not called at all for `cooldown` seconds (responses are
BYPASS, built from PostgreSQL); then one probe call is let through (half-open),
and its success closes the breaker.

The client is cache/pipe.py (`RedisPipe`, pipelined; redis-py for TLS), the breaker
cache/breaker.py; this module puts them together under the bound (`BoundedRedis`),
makes the redis-py client (`create_client`) and keeps the Lua scripts by SHA:
`EVALSHA` answered `NOSCRIPT` (Redis restarted) is repeated once as `EVAL`. The
redis-py client (`.redis`) stays for tests and the operator commands (`server_stats`).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from cache.breaker import CircuitBreaker, Unavailable
from cache.metrics import failure_counter
from cache.pipe import Arg, Executor, RedisPipe, RedisPyExecutor

log = logging.getLogger("conectades.cache")


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()  # Redis' id


# Every script sent by its SHA, so a NOSCRIPT (Redis restarted) can be repeated as EVAL.
_SCRIPTS: dict[Arg, str] = {}


def register_script(source: str) -> str:
    """The SHA to `EVALSHA` a Lua script by; `BoundedRedis` knows its source."""
    sha = _sha(source)
    _SCRIPTS.setdefault(sha, source)
    return sha


def _no_script(exc: BaseException) -> bool:
    return isinstance(exc, NoScriptError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("NOSCRIPT")
    )


def create_client(url: str, *, connect_timeout: float, timeout: float) -> Redis:
    """A client that fails fast: short timeouts, lazy connections, no retry after a
    timeout; one immediate retry after a connection error, so a pooled connection
    left stale by a Redis restart reconnects instead of failing the call."""
    return Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=0,
        client_name="conectades-api",
    )


class BoundedRedis:
    """Redis for the request path: every call within a hard bound (`timeout`:
    connect + reply, no retries), through the circuit breaker, over the pipelined
    client (`RedisPipe`) or, where it cannot be used, redis-py. A call that cannot be
    answered raises `Unavailable`; callers fail open. The response cache and the
    per-key rate limiter share one per worker (one connection, one breaker)."""

    def __init__(
        self,
        redis: Redis,
        *,
        timeout: float = 0.1,
        breaker: CircuitBreaker | None = None,
        pipelined: bool = True,
    ) -> None:
        # redis-py: for tests and operator commands; the calls below use `executor`.
        self.redis = redis
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        pipe = RedisPipe.for_client(redis, timeout) if pipelined else None
        self.executor: Executor = pipe if pipe is not None else RedisPyExecutor(redis, timeout)

    async def call(self, op: str, *args: Arg) -> Any:
        """One command through the breaker; the executor bounds it by `timeout`."""
        breaker = self.breaker
        if not breaker.allow():
            failure_counter(op, "open").inc()
            raise Unavailable("open")
        try:
            value = await self._execute(args)
        except (RedisError, OSError, TimeoutError) as exc:
            failure_counter(op, "error").inc()
            if breaker.failure():
                log.warning(
                    "cache: Redis failing (%s: %s); breaker open for %.1f s",
                    op,
                    type(exc).__name__,
                    breaker.cooldown,
                )
            raise Unavailable("error") from exc
        except BaseException:
            breaker.release()
            raise
        breaker.success()
        return value

    async def _execute(self, args: tuple[Arg, ...]) -> Any:
        try:
            return await self.executor.execute(*args)
        except ResponseError as exc:
            # EVALSHA of a script Redis forgot (it restarted): once more as EVAL.
            source = _SCRIPTS.get(args[1]) if args[0] == "EVALSHA" else None
            if source is None or not _no_script(exc):
                raise
        return await self.executor.execute("EVAL", source, *args[2:])

    async def run_script(self, op: str, source: str, keys: list[str], *args: Arg) -> Any:
        """A Lua script by its SHA (EVAL once if Redis forgot it); raises `Unavailable`
        when Redis cannot answer (the rate limiter's GCRA, the cache's lookups)."""
        sha = register_script(source)
        return await self.call(op, "EVALSHA", sha, len(keys), *keys, *args)

    async def close(self) -> None:
        await self.executor.close()
        await self.redis.aclose()
