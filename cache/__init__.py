"""The response cache in Redis, in three layers:

- `cache.redisio`: the Redis I/O of the request path — a pipelined client
  (`RedisPipe`, cache/pipe.py), a circuit breaker (cache/breaker.py), and
  `BoundedRedis`, under which every call has a hard bound and fails open. The rate
  limiter (tenants/ratelimit.py) uses it too.
- `cache.keys`: where entries live (scopes, generations, parts, the epoch) and the
  Lua scripts that read and bump generations in one round trip.
- `cache.response`: `ResponseCache`, ready-to-send bodies per tenant, with exact
  invalidation after writes and owed invalidations replayed after failures.
- `cache.metrics`: the Prometheus counters (multiprocess directory included).

Handlers do not use this package directly: api/cache.py (cached reads and
invalidation after writes) does; the worker opens and closes it in api/lifecycle.py.
"""

from cache.breaker import CircuitBreaker, Unavailable
from cache.keys import EPOCH_KEY, TTLS, generation_key, ttl_for
from cache.metrics import prepare_metrics_dir
from cache.pipe import RedisPipe
from cache.redisio import BoundedRedis, create_client
from cache.response import Lookup, ResponseCache, Result, count_disabled, open_response_cache

__all__ = [
    "EPOCH_KEY",
    "TTLS",
    "BoundedRedis",
    "CircuitBreaker",
    "Lookup",
    "RedisPipe",
    "ResponseCache",
    "Result",
    "Unavailable",
    "count_disabled",
    "create_client",
    "generation_key",
    "open_response_cache",
    "prepare_metrics_dir",
    "ttl_for",
]
