"""Sending one message over SMTP (aiosmtplib), and telling a failure worth retrying
from one that will fail the same way again."""

from __future__ import annotations

import re
import ssl
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


async def send(settings: EmailSettings, message: Message) -> None:
    """Hand `message` to the SMTP server; SendFailed when it was not accepted."""
    tls = settings.SMTP_TLS
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            username=settings.SMTP_USERNAME or None,
            password=settings.SMTP_PASSWORD or None,
            use_tls=tls == "tls",
            start_tls=tls == "starttls",
            tls_context=_tls_context(settings) if tls != "none" else None,
            timeout=settings.SMTP_TIMEOUT,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        permanent = bool(codes) and all(500 <= c < 600 for c in codes)
        reason = f"recipient refused ({', '.join(map(str, codes))})"
        raise SendFailed(reason, permanent=permanent) from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        # The operator's settings, not this message: retried once they are fixed.
        raise SendFailed(f"SMTP authentication failed ({exc.code})", permanent=False) from None
    except aiosmtplib.SMTPResponseException as exc:
        # 5xx: the server will refuse this message again; 4xx: try later.
        permanent = 500 <= exc.code < 600
        raise SendFailed(f"SMTP {exc.code}: {_clean(exc.message)}", permanent=permanent) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Connection refused or lost, timeouts, TLS problems: try later.
        raise SendFailed(f"{type(exc).__name__}: {_clean(str(exc))}", permanent=False) from None
