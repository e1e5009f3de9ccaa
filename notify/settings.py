"""Email settings, from `CONECTADES_*` environment variables (db/envconfig.py).

- `SMTP_HOST` (empty: email is off; jobs wait in `email_job`, nothing is lost),
  `SMTP_PORT` (587), `SMTP_FROM` (e.g. `Conectades <nao-responda@example.org>`),
  `SMTP_USERNAME` and `SMTP_PASSWORD` (AUTH when set).
- `SMTP_TLS`: `starttls` (default; required, not opportunistic), `tls` (implicit,
  port 465) or `none` (a local sink or relay only); `SMTP_TLS_VERIFY` (true; false
  accepts any certificate); `SMTP_TIMEOUT` (10 s per SMTP step).
- `PUBLIC_URL`: the site's address (the edge), for links; `LINK_SECRET` (at least
  32 bytes): signs the confirm links, the API verifies them with it;
  `CONFIRM_LINK_TTL`: seconds a link stays valid (14 days).
- `EMAIL_BATCH` (10 jobs claimed and sent concurrently per turn), `EMAIL_LEASE`
  (300 s: a claimed job not settled by then is claimed again), `EMAIL_RETRY_BASE`
  and `EMAIL_RETRY_MAX` (retry n waits base * 2^(n-1) s, +-20 %, at most max: 10 s
  and 3600 s), `EMAIL_MAX_ATTEMPTS` (12, about 9 hours; then the job is `failed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr

from db.envconfig import ENV_PREFIX, EnvValueError, read_env
from notify.links import MIN_SECRET_BYTES

TLS_MODES = ("none", "starttls", "tls")


class EmailConfigError(ValueError):
    pass


@dataclass(frozen=True)
class EmailSettings:
    SMTP_HOST: str = ""
    SMTP_PORT: int = 587
    SMTP_FROM: str = ""
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_TLS: str = "starttls"
    SMTP_TLS_VERIFY: bool = True
    SMTP_TIMEOUT: float = 10.0
    PUBLIC_URL: str = ""
    LINK_SECRET: str = ""
    CONFIRM_LINK_TTL: int = 14 * 24 * 3600
    EMAIL_BATCH: int = 10
    EMAIL_LEASE: float = 300.0
    EMAIL_RETRY_BASE: float = 10.0
    EMAIL_RETRY_MAX: float = 3600.0
    EMAIL_MAX_ATTEMPTS: int = 12

    @property
    def enabled(self) -> bool:
        return bool(self.SMTP_HOST)

    @property
    def sender(self) -> Address:
        name, addr = parseaddr(self.SMTP_FROM)
        user, _, domain = addr.rpartition("@")
        return Address(display_name=name, username=user, domain=domain)

    @property
    def public_url(self) -> str:
        return self.PUBLIC_URL.rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmailSettings:
        """The settings, checked; EmailConfigError names what is wrong."""
        try:
            settings = read_env(cls, env)
        except EnvValueError as exc:
            raise EmailConfigError(str(exc)) from None
        settings.check()
        return settings

    def check(self) -> None:
        """With a host set, everything a message needs must be set too."""
        if not self.enabled:
            return
        problems = []
        if self.SMTP_TLS not in TLS_MODES:
            problems.append(f"SMTP_TLS must be one of {', '.join(TLS_MODES)}")
        if "@" not in parseaddr(self.SMTP_FROM)[1]:
            problems.append("SMTP_FROM must be an address, e.g. 'Conectades <noreply@host>'")
        if not self.PUBLIC_URL.startswith(("https://", "http://")):
            problems.append("PUBLIC_URL must be the site's address, http(s)://...")
        if len(self.LINK_SECRET.encode()) < MIN_SECRET_BYTES:
            problems.append(f"LINK_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.EMAIL_BATCH < 1 or self.EMAIL_MAX_ATTEMPTS < 1:
            problems.append("EMAIL_BATCH and EMAIL_MAX_ATTEMPTS must be at least 1")
        if self.EMAIL_LEASE <= 3 * self.SMTP_TIMEOUT:
            problems.append("EMAIL_LEASE must be more than 3 * SMTP_TIMEOUT")
        if problems:
            raise EmailConfigError("; ".join(ENV_PREFIX + p for p in problems))
