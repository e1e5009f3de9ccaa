"""A local SMTP sink (aiosmtpd): accepts every message and writes each one to
`<dir>/<time>-<n>.eml`, so a person can open what the stack sent. Nothing is relayed.

    python -m infra.smtp_sink --port 2525 --dir var/mail

Runs in the foreground (the stack's supervisor runs it; tests start it on a free
port). Loopback only by default: it accepts mail from anyone who can reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class EmlDirectory:
    """aiosmtpd handler: one .eml file per message, written whole (a reader never
    sees half a file: it is written under a temporary name, then renamed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        # Who it was sent to on the wire (Bcc is in no header).
        head = (
            f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
            f"X-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{os.getpid()}-{next(self._seq)}.eml"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(head + content)
        tmp.replace(self.directory / name)
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, directory: Path) -> None:
    handler = EmlDirectory(directory)
    loop = asyncio.get_running_loop()

    def protocol() -> Any:
        return SMTP(handler, enable_SMTPUTF8=True, hostname="conectades-sink")

    server = await loop.create_server(protocol, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"SMTP sink on {host}:{port}, writing to {directory}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smtp_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"), help="where .eml files go")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
