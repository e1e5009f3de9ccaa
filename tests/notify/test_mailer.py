"""notify/smtp.py's Mailer against the real SMTP sink: a connection is kept from one
message to the next, a kept connection the server closed is replaced without failing
the message, and a server that is down still fails it (for a retry), keeping nothing."""

from __future__ import annotations

import uuid
from email.message import EmailMessage

import pytest

from notify.settings import EmailSettings
from notify.smtp import Mailer, SendFailed
from tests.notify.conftest import SENDER_DOMAIN, Sink
from tests.services import Database


def settings_for(sink: Sink) -> EmailSettings:
    return EmailSettings.from_env(
        {
            "CONECTADES_SMTP_HOST": "127.0.0.1",
            "CONECTADES_SMTP_PORT": str(sink.port),
            "CONECTADES_SMTP_FROM": f"Conectades <nao-responda@{SENDER_DOMAIN}>",
            "CONECTADES_SMTP_TLS": "none",
            "CONECTADES_SMTP_TIMEOUT": "5",
            "CONECTADES_PUBLIC_URL": "http://127.0.0.1:1",
            "CONECTADES_LINK_SECRET": "x" * 43,
        }
    )


def message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"nao-responda@{SENDER_DOMAIN}"
    msg["To"] = to
    msg["Subject"] = "Teste"
    msg["Message-ID"] = f"<{uuid.uuid4()}@{SENDER_DOMAIN}>"
    msg.set_content("Olá")
    return msg


def address() -> str:
    return f"mailer-{uuid.uuid4().hex[:10]}@example.org"


def test_one_connection_carries_message_after_message(db: Database, sink: Sink) -> None:
    mailer = Mailer(settings_for(sink), keep=4)
    to = [address() for _ in range(3)]

    async def send_all() -> list[object]:
        clients = []
        for rcpt in to:
            await mailer.send(message(rcpt))
            clients.append(mailer._idle[-1][1])
        await mailer.close()
        return clients

    clients = db.run(send_all())
    assert clients[0] is clients[1] is clients[2]
    assert mailer._idle == []
    for rcpt in to:
        assert len(sink.to(rcpt)) == 1


def test_a_kept_connection_the_server_closed_is_replaced(db: Database, sink: Sink) -> None:
    mailer = Mailer(settings_for(sink), keep=4)
    first, second = address(), address()
    db.run(mailer.send(message(first)))
    kept = mailer._idle[-1][1]
    sink.stop()  # the server goes away and comes back on the same port
    sink.start()
    db.run(mailer.send(message(second)))
    assert mailer._idle[-1][1] is not kept
    db.run(mailer.close())
    assert len(sink.to(first)) == 1 and len(sink.to(second)) == 1


def test_connections_idle_too_long_are_not_reused(db: Database, sink: Sink) -> None:
    mailer = Mailer(settings_for(sink), keep=4, idle=0.0)
    db.run(mailer.send(message(address())))
    kept = mailer._idle[-1][1]
    db.run(mailer.send(message(address())))
    assert mailer._idle[-1][1] is not kept
    assert not kept.is_connected
    db.run(mailer.close())


def test_a_server_down_fails_the_message_for_a_retry_and_keeps_nothing(
    db: Database, sink: Sink
) -> None:
    mailer = Mailer(settings_for(sink), keep=4)
    db.run(mailer.send(message(address())))
    assert len(mailer._idle) == 1
    sink.stop()
    try:
        with pytest.raises(SendFailed) as failed:
            db.run(mailer.send(message(address())))
        assert not failed.value.permanent
        assert mailer._idle == []
    finally:
        sink.start()
    db.run(mailer.send(message(address())))  # a fresh connection
    db.run(mailer.close())
