"""Where the response cache keeps things in Redis: entry keys, generations, and the
two Lua scripts that read and bump them.

Keys. Every entry key carries its scope (one tenant, or the cross-tenant public
directory), the resource, a global *epoch*, the scope's *generation* and a digest
of the request::

    cx:t:<tenant uuid>:<resource>:<epoch>:<generation>:<blake2b-128 of method+path+query>
    cx:dir:<resource>:<epoch>:<generation>:<digest>

A lookup reads the epoch, the generation and the entry in ONE round trip (a Lua
script), so tenant A's lookup can only ever address keys under `cx:t:<A>:`.
Invalidating a tenant (after any write, or a purge) increments its generation:
O(1), no KEYS/SCAN; entries of older generations are unreachable and leave by TTL
or LRU. `invalidate_directory()` does the same for the public directory and
`purge_all()` for the epoch. Generations never repeat, even if LRU evicts a
generation key: a missing generation restarts from the Redis clock in µs, and a
bump sets max(current + 1, clock), so an old entry's generation is never current
again (barring the Redis host's clock stepping backwards).

Parts. A tenant's read may also name a *part* of the tenant it depends on (one
campaign, or the tenant-wide lists); its key then carries that part's generation
too (`...:<generation>:<part generation>:<digest>`). A write that changes only
some parts (a donation: its campaign and the lists) bumps those parts'
generations instead of the tenant's, so the tenant's other cached pages stay
valid; a write that may change anything bumps the tenant's generation, which
every key of the tenant carries.

Entries are stored under the generation read *before* the body was built, so a
write that commits while a body is being built makes that body unreachable: a
read after one's own write never finds the previous value — as long as the
write's invalidation reached Redis.

Lagging parts. A write may instead *mark* a part due (`<generation key>:due` :=
the Redis clock in µs, unless a mark is already there): nothing is dropped yet.
A lookup that names a lag for its part (ARGV[3], µs) and finds a mark at least
that old bumps the part's generation then, in the same script, and removes the
mark, so its own read already misses. A read therefore never answers a body that
misses a marked write for longer than the lag after that write (the oldest
unapplied mark), however many writes keep coming, and a part nobody marks keeps
its entries for their whole TTL. The public pages use this for donations (their
totals may lag a moment); everything else is bumped at once.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

# Seconds an entry lives, by resource (from the system we replace).
TTLS: dict[str, int] = {"campaigns": 3600, "donations": 900, "users": 1800}

PREFIX = "cx"
EPOCH_KEY = f"{PREFIX}:epoch"

# KEYS[1] epoch, KEYS[2] scope generation, KEYS[3] (optional) part generation;
# ARGV[1] entry prefix, ARGV[2] digest, ARGV[3] (optional) the part's lag in µs.
# The entry key is the prefix, every counter and the digest. A missing counter
# starts at the server clock in µs (never an earlier value).
LOOKUP_LUA = """
local function counter(key)
  local v = redis.call('GET', key)
  if not v then
    local t = redis.call('TIME')
    v = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', key, v)
  end
  return v
end
local lag = tonumber(ARGV[3] or '0')
if lag > 0 and #KEYS > 2 then
  local part = KEYS[#KEYS]
  local due = redis.call('GET', part .. ':due')
  if due then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    if now - tonumber(due) >= lag then
      local cur = tonumber(redis.call('GET', part) or '0') or 0
      redis.call('SET', part, string.format('%d', math.max(cur + 1, now)))
      redis.call('DEL', part .. ':due')
    end
  end
end
local slot = ARGV[1]
for _, key in ipairs(KEYS) do
  slot = slot .. counter(key) .. ':'
end
slot = slot .. ARGV[2]
return {slot, redis.call('GET', slot)}
"""

# The first ARGV[1] keys (all without it) := max(current + 1, server clock in µs):
# strictly increasing, and beyond any value it had before an eviction. The others
# are marked due (see "Lagging parts"), keeping an older mark; a mark outlives
# every entry it concerns (the longest TTL).
MARK_TTL = 3600
BUMP_LUA = f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local bump = tonumber(ARGV[1] or #KEYS)
for i, key in ipairs(KEYS) do
  if i <= bump then
    local cur = tonumber(redis.call('GET', key) or '0') or 0
    redis.call('SET', key, string.format('%d', math.max(cur + 1, now)))
  else
    redis.call('SET', key .. ':due', string.format('%d', now), 'NX', 'EX', {MARK_TTL})
  end
end
return #KEYS
"""


def ttl_for(resource: str) -> int:
    try:
        return TTLS[resource]
    except KeyError:
        raise ValueError(f"no cache TTL for resource {resource!r}") from None


def scope_of(tenant_id: UUID | None) -> str:
    return f"t:{tenant_id}" if tenant_id is not None else "dir"


def generation_key(tenant_id: UUID | None) -> str:
    return f"{PREFIX}:gen:{scope_of(tenant_id)}"


def digest(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
