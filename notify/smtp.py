"""Sending messages over SMTP (aiosmtplib) on kept connections (`Mailer`), and
telling a failure worth retrying from one that will fail the same way again."""

from __future__ import annotations

import contextlib
import re
import ssl
import time
from email.message import Message

import aiosmtplib

from notify.settings import EmailSettings

# A server's reply may quote the address it refused: kept out of stored reasons.
_ADDRESS = re.compile(r"\S+@\S+")


def _clean(text: str) -> str:
    return _ADDRESS.sub("<address>", text)[:200]


class SendFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


def _tls_context(settings: EmailSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not settings.SMTP_TLS_VERIFY:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Mailer:
    """Sends messages over kept SMTP connections (aiosmtplib): one message at a time
    on each, up to `keep` idle ones kept for `idle` seconds. A connection per message
    cost the worker and the server a TCP handshake, the greeting, EHLO and QUIT for
    every email (BENCHMARKS.md, session 27). A connection that fails in any way is
    closed, never reused; a kept one that the server had closed while idle is
    replaced by a fresh one once, before the message counts as failed."""

    def __init__(self, settings: EmailSettings, *, keep: int = 10, idle: float = 5.0) -> None:
        self.settings, self.keep, self.idle = settings, keep, idle
        self._idle: list[tuple[float, aiosmtplib.SMTP]] = []

    def _client(self) -> aiosmtplib.SMTP:
        settings, tls = self.settings, self.settings.SMTP_TLS
        return aiosmtplib.SMTP(
            hostname=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            username=settings.SMTP_USERNAME or None,
            password=settings.SMTP_PASSWORD or None,
            use_tls=tls == "tls",
            start_tls=tls == "starttls",
            tls_context=_tls_context(settings) if tls != "none" else None,
            timeout=settings.SMTP_TIMEOUT,
        )

    def _take(self) -> aiosmtplib.SMTP | None:
        """The most recently used idle connection still fresh enough, if any."""
        now = time.monotonic()
        while self._idle:
            used, client = self._idle.pop()
            if now - used < self.idle and client.is_connected:
                return client
            _drop(client)
        return None

    async def send(self, message: Message) -> None:
        """Hand `message` to the SMTP server; SendFailed when it was not accepted."""
        client = self._take()
        if client is not None:
            try:
                await client.send_message(message)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                _drop(client)  # closed while idle: once more on a fresh connection
            except BaseException as exc:
                _drop(client)
                raise _failure(exc) from None
            else:
                self._give_back(client)
                return
        client = self._client()
        try:
            await client.connect()
            await client.send_message(message)
        except BaseException as exc:
            _drop(client)
            raise _failure(exc) from None
        self._give_back(client)

    def _give_back(self, client: aiosmtplib.SMTP) -> None:
        if len(self._idle) < self.keep:
            self._idle.append((time.monotonic(), client))
        else:
            _drop(client)

    async def close(self) -> None:
        """QUIT every kept connection."""
        idle, self._idle = self._idle, []
        for _, client in idle:
            with contextlib.suppress(Exception):
                await client.quit()
            _drop(client)


def _drop(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        client.close()


def _failure(exc: BaseException) -> BaseException:
    """What a send's exception means for the job: SendFailed (retry or not), or the
    exception itself when it is not about sending (a cancellation, a bug)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        permanent = bool(codes) and all(500 <= c < 600 for c in codes)
        reason = f"recipient refused ({', '.join(map(str, codes))})"
        return SendFailed(reason, permanent=permanent)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # The operator's settings, not this message: retried once they are fixed.
        return SendFailed(f"SMTP authentication failed ({exc.code})", permanent=False)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # 5xx: the server will refuse this message again; 4xx: try later.
        permanent = 500 <= exc.code < 600
        return SendFailed(f"SMTP {exc.code}: {_clean(exc.message)}", permanent=permanent)
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        # Connection refused or lost, timeouts, TLS problems: try later.
        return SendFailed(f"{type(exc).__name__}: {_clean(str(exc))}", permanent=False)
    return exc
