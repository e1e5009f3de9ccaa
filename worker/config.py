"""The worker's settings, from `CONECTADES_*` environment variables (db/envconfig.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from db.envconfig import ENV_PREFIX, EnvValueError, read_env

# Seconds before attempt 2, 3, ...: about 27.6 hours in all, then the delivery is dead.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass(frozen=True)
class WorkerConfig:
    DATABASE_URL: str = ""  # the API's role (row-level security applies)
    DB_POOL_MAX: int = 10
    DB_COMMAND_TIMEOUT: float = 10.0
    # New deliveries are found by polling (an index probe when nothing is due): a
    # NOTIFY from every event's transaction would serialize their commits
    # (db/migrations/0016). NOTIFY still wakes it at once for a manual retry.
    WORKER_POLL_INTERVAL: float = 0.25
    # On SIGTERM: stop claiming, let deliveries in flight finish for up to this long.
    WORKER_SHUTDOWN_TIMEOUT: float = 15.0
    WEBHOOK_ALLOWED_HOSTS: str = ""
    # Whole attempt: connect, send, read the answer (connect alone: half of it).
    WEBHOOK_TIMEOUT: float = 10.0
    # Deliveries in flight per worker process (so at most as many connections). Run
    # more workers to send more at once.
    WEBHOOK_CONCURRENCY: int = 16
    WEBHOOK_BATCH: int = 100
    # A claimed delivery whose worker died is claimed again after this long.
    WEBHOOK_LEASE: float = 60.0
    WEBHOOK_RETRY_SCHEDULE: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    WEBHOOK_RETRY_JITTER: float = 0.2
    # Consecutive dead deliveries (each ≥ 27 h of failing) that disable an endpoint.
    WEBHOOK_DISABLE_AFTER_DEAD: int = 5
    # Seconds between rounds that fold the item totals' slots into one row (worker/
    # totals.py; 0: never) and items per round: about 0.1 ms each, the slots of a
    # round locked until it commits (a donation to one of them waits that long).
    TOTALS_COMPACT_INTERVAL: float = 2.0
    TOTALS_COMPACT_BATCH: int = 250
    # The process's niceness at least (0-19; 0 leaves it as started): its jobs are
    # seconds-tolerant, so on shared cores the API and PostgreSQL run first.
    WORKER_NICE: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerConfig:
        try:
            cfg = read_env(cls, env)
        except EnvValueError as exc:
            raise SystemExit(f"{exc}: {exc.raw!r}") from None
        if not 0 <= cfg.WORKER_NICE <= 19:
            raise SystemExit(f"{ENV_PREFIX}WORKER_NICE must be 0-19: {cfg.WORKER_NICE!r}")
        if not cfg.DATABASE_URL:
            raise SystemExit(f"missing required configuration: {ENV_PREFIX}DATABASE_URL")
        return cfg
