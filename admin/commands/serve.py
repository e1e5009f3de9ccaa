"""`conectades serve` and `conectades worker`: the API and the background worker."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, max=512, help="Worker processes (default: one per core).")
    ] = None,
) -> None:
    """Run the API: `sanic api.server:create_app --factory` (replaces this process)."""
    count = workers or os.cpu_count() or 1
    argv = [
        sys.executable, "-m", "sanic", "api.server:create_app", "--factory",
        "--host", host, "--port", str(port), "--workers", str(count), "--no-motd",
    ]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - serve becomes the API process


def worker() -> None:
    """Run the background worker: webhook deliveries (and the other jobs of worker/).

    Settings from CONECTADES_* (CONECTADES_DATABASE_URL, the API's role;
    CONECTADES_WEBHOOK_ALLOWED_HOSTS, ...: docs/webhooks.md). Stops on SIGTERM."""
    from worker.main import main as worker_main

    worker_main()
