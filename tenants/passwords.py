"""Staff passwords: argon2id with OWASP's recommended minimum (19 MiB, 2 passes, one
lane).

argon2-cffi's default (RFC 9106's low-memory profile: 64 MiB, 3 passes, 4 lanes) cost
0.27 s of CPU per login on this 2-core machine and took both cores while it ran: in
the 1000-user load run, 60 logins stalled every other request for seconds. This
profile costs about 0.05 s. Hashes made with other parameters still verify (argon2
reads them from the hash) and are rehashed at the next successful login.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so unknown users cost the same
    time. Made on first use: hashing at import time would slow every cold start."""
    return _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
