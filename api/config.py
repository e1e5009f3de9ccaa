"""Typed configuration, read only from `CONECTADES_*` environment variables."""

from __future__ import annotations

from typing import Any

from sanic.config import Config

from db.crypto import KeyConfigError, Keyring

ENV_PREFIX = "CONECTADES_"
REQUIRED_SECRETS = ("DATABASE_URL", "JWT_SECRET", "CONTACT_KEYS", "CONTACT_HMAC_KEY")


class ConfigError(RuntimeError):
    pass


class AppConfig(Config):
    DATABASE_URL: str
    DB_POOL_MIN: int
    DB_POOL_MAX: int
    DB_ACQUIRE_TIMEOUT: float
    DB_COMMAND_TIMEOUT: float
    # 0 behind PgBouncer in transaction mode (prepared statements do not survive it).
    DB_STATEMENT_CACHE_SIZE: int
    DB_CONNECT_TIMEOUT: float
    # Graceful stop (api/drain.py: setup_drain): at most DRAIN_TIMEOUT s of
    # answering with `Connection: close` while readiness is false (new connections
    # accepted for the first DRAIN_ACCEPT s only), then at most
    # GRACEFUL_SHUTDOWN_TIMEOUT s (Sanic's) for requests still in flight.
    DRAIN_TIMEOUT: float
    DRAIN_ACCEPT: float
    DRAIN_QUIET: float
    GRACEFUL_SHUTDOWN_TIMEOUT: float
    # Seconds from a request's first byte to its last (headers and body); past them
    # 408 and the connection closes (api/body_timeout.py). 0 turns it off.
    BODY_TIMEOUT: float
    JWT_SECRET: str
    JWT_ISSUER: str
    JWT_AUDIENCE: str
    ACCESS_TOKEN_TTL: int
    REFRESH_TOKEN_TTL: int
    IDEMPOTENCY_TTL: int
    CONTACT_RETENTION_DAYS: int
    # Donor contacts and messages at rest (db/crypto.py): `id:base64key,...` newest
    # first (the first encrypts, all decrypt), and the lookup hash's key.
    CONTACT_KEYS: str
    CONTACT_HMAC_KEY: str
    AUDIT_RETENTION_DAYS: int
    EVENT_RETENTION_DAYS: int
    EXPORT_CONCURRENCY: int
    # Optional: empty disables the response cache (every read is X-Cache: BYPASS).
    REDIS_URL: str
    CACHE_CONNECT_TIMEOUT: float
    CACHE_TIMEOUT: float
    CACHE_BREAKER_THRESHOLD: int
    CACHE_BREAKER_COOLDOWN: float
    AUTH_FAILURE_RATE: float
    AUTH_FAILURE_BURST: int
    METRICS_ALLOW: str
    TRUSTED_PROXIES: str
    RATE_LIMIT_RATE: float
    RATE_LIMIT_BURST: int
    BACKLOG: int
    LIVENESS_BLOCKED: float
    WEBHOOK_ALLOWED_HOSTS: str
    # Signs the emailed "Confirmar recebimento" links (notify/links.py); optional:
    # without it the confirm pages refuse every link (and the worker sends no email).
    LINK_SECRET: str

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(
            defaults={
                "DATABASE_URL": "",
                "DB_POOL_MIN": 2,
                "DB_POOL_MAX": 10,
                "DB_ACQUIRE_TIMEOUT": 5.0,
                "DB_COMMAND_TIMEOUT": 10.0,
                "DB_STATEMENT_CACHE_SIZE": 100,
                "DB_CONNECT_TIMEOUT": 5.0,
                # Longer than the edge's upstream keepalive_timeout (edge/render.py),
                # so the edge closes its idle connections to a draining worker first.
                "DRAIN_TIMEOUT": 5.0,
                # New connections are still served this long after the signal (load
                # balancers and Kubernetes endpoints take a moment to stop sending);
                # then the listener is frozen (new connects wait, then are refused).
                "DRAIN_ACCEPT": 1.0,
                # Drain ends early once no client connection has been open this long.
                "DRAIN_QUIET": 0.3,
                "GRACEFUL_SHUTDOWN_TIMEOUT": 10.0,
                # As the edge's client_body_timeout; Sanic's REQUEST_TIMEOUT restarts
                # on every chunk received, so it does not bound a slow sender.
                "BODY_TIMEOUT": 10.0,
                "JWT_SECRET": "",
                "JWT_ISSUER": "conectades",
                "JWT_AUDIENCE": "conectades-api",
                "ACCESS_TOKEN_TTL": 15 * 60,
                "REFRESH_TOKEN_TTL": 7 * 24 * 3600,
                "IDEMPOTENCY_TTL": 24 * 3600,
                # Donor contacts older than this are erased by `conectades db prune`.
                "CONTACT_RETENTION_DAYS": 365,
                "CONTACT_KEYS": "",
                "CONTACT_HMAC_KEY": "",
                # Audit rows older than this are deleted by `conectades db prune`.
                "AUDIT_RETENTION_DAYS": 365,
                # Events older than this are deleted by `conectades db prune` (≥ 30).
                "EVENT_RETENTION_DAYS": 90,
                # CSV exports streaming at once per worker; each holds a pool connection
                # for its whole download (api/routes/export.py). More are 503.
                "EXPORT_CONCURRENCY": 2,
                "REDIS_URL": "",
                "CACHE_CONNECT_TIMEOUT": 0.1,
                "CACHE_TIMEOUT": 0.1,
                "CACHE_BREAKER_THRESHOLD": 3,
                "CACHE_BREAKER_COOLDOWN": 5.0,
                # Peers whose X-Real-IP header is believed (the edge); comma-separated.
                "TRUSTED_PROXIES": "127.0.0.1",
                # The listening socket's accept queue (api/listen.py; the kernel caps
                # it at net.core.somaxconn).
                "BACKLOG": 2048,
                # Per API key / staff user on the partner API (Redis GCRA); 0 disables.
                "RATE_LIMIT_RATE": 50.0,
                "RATE_LIMIT_BURST": 100,
                # Failed authentications per client IP, per worker (tenants/authlimit.py):
                # a steady rate and a burst; past them 429 before any lookup. 0 disables.
                "AUTH_FAILURE_RATE": 1.0,
                "AUTH_FAILURE_BURST": 20,
                # Who may read /metrics (addresses and CIDR ranges; the client's address
                # as resolved through TRUSTED_PROXIES).
                "METRICS_ALLOW": "127.0.0.1,::1",
                # /health is 503 when a worker's event loop has not run for this long
                # (api/supervision.py); a slow request does not block the loop.
                "LIVENESS_BLOCKED": 5.0,
                # Webhook destinations allowed although not public (worker/destinations.py),
                # comma-separated hosts as spelled in URLs; the worker reads the same.
                "WEBHOOK_ALLOWED_HOSTS": "",
                "LINK_SECRET": "",
                # Sanic's own settings, overridable the same way.
                "REQUEST_MAX_SIZE": 64 * 1024,
                "REQUEST_TIMEOUT": 30,
                "RESPONSE_TIMEOUT": 30,
                "KEEP_ALIVE_TIMEOUT": 75,
                "ACCESS_LOG": False,
                "NOISY_EXCEPTIONS": False,
                "FALLBACK_ERROR_FORMAT": "json",
                "OAS_URL_PREFIX": "/api/docs",
                "OAS_UI_DEFAULT": "swagger",
                "OAS_UI_REDOC": False,
                "OAS_TITLE": "Conectades API",
                "OAS_VERSION": "1.0.0",
                "OAS_DESCRIPTION": (
                    "Multi-tenant API for community fundraising campaigns. Partner routes "
                    "take `Authorization: Bearer <api key or staff access token>`."
                ),
                "CORS_ORIGINS": "*",
            },
            env_prefix=ENV_PREFIX,
        )
        if overrides:
            self.update(overrides)

    def check(self) -> None:
        """Refuse to start without the secrets (they have no defaults)."""
        missing = [k for k in REQUIRED_SECRETS if not self.get(k)]
        if missing:
            names = ", ".join(ENV_PREFIX + k for k in missing)
            raise ConfigError(f"missing required configuration: {names}")
        if len(self.JWT_SECRET.encode()) < 32:
            raise ConfigError(f"{ENV_PREFIX}JWT_SECRET must be at least 32 bytes")
        if self.LINK_SECRET and len(str(self.LINK_SECRET).encode()) < 32:
            raise ConfigError(f"{ENV_PREFIX}LINK_SECRET must be at least 32 bytes")
        try:
            self.keyring()
        except KeyConfigError as exc:
            raise ConfigError(str(exc)) from None

    def keyring(self) -> Keyring:
        """The donor-contact keys (db/crypto.py); KeyConfigError says what is wrong."""
        return Keyring.parse(str(self.CONTACT_KEYS), str(self.CONTACT_HMAC_KEY))
