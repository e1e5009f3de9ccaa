"""Webhook deliveries: claim due ones, POST them signed, record each outcome.

At least once: a delivery is claimed with a lease (db: webhook_claim) and only
marked succeeded after a 2xx; a worker killed mid-delivery leaves the lease to
expire and the delivery is sent again, with the same `webhook-id`. In order per
resource where possible: the claim skips a delivery while an earlier one for the
same endpoint and resource is pending. Failures (non-2xx, 3xx included since
redirects are not followed, timeouts, refused destinations) are retried on
`WEBHOOK_RETRY_SCHEDULE` with jitter; after the last the delivery is dead, and
`WEBHOOK_DISABLE_AFTER_DEAD` dead deliveries in a row disable the endpoint and
write a `webhook.disabled` event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC
from typing import Any
from uuid import UUID

import asyncpg
import h11
import orjson

from db.queries import events
from db.queries import webhooks as q
from db.tenancy import tenant_transaction
from worker.config import WorkerConfig
from worker.destinations import DestinationRefused, parse_allowed
from worker.http import DeliveryClient, UnsupportedURL
from worker.signing import signature_header

log = logging.getLogger("conectades.worker.webhooks")

CHANNEL = "webhook_delivery"
USER_AGENT = "Conectades-Webhooks/1"
MAX_RESPONSE_BYTES = 64 * 1024
# Seconds between two claims that found fewer rows than they asked for.
CLAIM_SPACING = 0.05


def payload(event_type: str, occurred_at: Any, data_json: str) -> bytes:
    """`{"type", "timestamp", "data"}`; `data` is the event's stored JSON as is."""
    ts = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return (
        b'{"type":'
        + orjson.dumps(event_type)
        + b',"timestamp":'
        + orjson.dumps(ts)
        + b',"data":'
        + data_json.encode()
        + b"}"
    )


class WebhookJob:
    def __init__(self, pool: asyncpg.Pool, cfg: WorkerConfig, wake: Any) -> None:
        self.pool = pool
        self.cfg = cfg
        self.wake = wake
        # At most WEBHOOK_CONCURRENCY deliveries in flight, so as many connections.
        self.http = DeliveryClient(
            parse_allowed(cfg.WEBHOOK_ALLOWED_HOSTS), max_response=MAX_RESPONSE_BYTES
        )
        self.in_flight: set[asyncio.Task[None]] = set()
        # Successes wait here a moment and are written together, one transaction per
        # tenant (a transaction per delivery cost more than the delivery itself).
        self.succeeded: list[tuple[asyncpg.Record, int, int]] = []
        self.record_soon = asyncio.Event()
        self.recorder: asyncio.Task[None] | None = None
        self.next_claim = 0.0
        self.wake_later: asyncio.TimerHandle | None = None

    async def drain(self) -> int:
        if self.recorder is None:
            self.recorder = asyncio.create_task(self._record_loop(), name="webhook-recorder")
        free = self.cfg.WEBHOOK_CONCURRENCY - len(self.in_flight)
        # Claim in batches, not one row per freed slot (each claim is a query).
        if free <= 0 or (self.in_flight and free < self.cfg.WEBHOOK_CONCURRENCY // 4):
            return 0
        # And not more often than every CLAIM_SPACING unless the last claim was full
        # (more are due): at 200 deliveries/s the worker claimed 110 times a second,
        # about 4 rows each (pg_stat_statements, 2026-12-03).
        wait = self.next_claim - time.monotonic()
        if wait > 0:
            if self.wake_later is None:
                self.wake_later = asyncio.get_running_loop().call_later(wait, self._wake_now)
            return 0
        limit = min(free, self.cfg.WEBHOOK_BATCH)
        async with self.pool.acquire() as conn:
            rows = await q.claim(conn, limit=limit, lease=self.cfg.WEBHOOK_LEASE)
        if len(rows) < limit:
            self.next_claim = time.monotonic() + CLAIM_SPACING
        for row in rows:
            task = asyncio.create_task(self.deliver(row))
            self.in_flight.add(task)
            task.add_done_callback(self._done)
        return len(rows)

    def _wake_now(self) -> None:
        self.wake_later = None
        self.wake()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())
        self.wake()  # a slot is free

    async def close(self) -> None:
        if self.in_flight:
            log.info("waiting for %d deliveries in flight", len(self.in_flight))
            _, pending = await asyncio.wait(
                set(self.in_flight), timeout=self.cfg.WORKER_SHUTDOWN_TIMEOUT
            )
            for task in pending:  # their leases expire; another worker sends them again
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        if self.recorder is not None:
            self.recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.recorder
        await self._record_successes()
        await self.http.aclose()

    async def deliver(self, row: asyncpg.Record) -> None:
        body = payload(row["event_type"], row["occurred_at"], row["data"])
        keys = [bytes(row["secret"])]
        if row["previous_secret"] is not None:
            keys.append(bytes(row["previous_secret"]))
        timestamp = int(time.time())
        headers = [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT.encode()),
            (b"webhook-id", row["message_id"].encode()),
            (b"webhook-timestamp", str(timestamp).encode()),
            (
                b"webhook-signature",
                signature_header(keys, row["message_id"], timestamp, body).encode(),
            ),
        ]
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            status = await self._post(row["url"], headers, body)
        except DestinationRefused as exc:
            error = f"destination refused: {exc}"
        except TimeoutError:
            error = f"timed out after {self.cfg.WEBHOOK_TIMEOUT:g} s"
        except (h11.ProtocolError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except UnsupportedURL as exc:
            error = f"unsupported URL: {exc}"
        latency_ms = int((time.monotonic() - started) * 1000)
        if status is not None and 200 <= status < 300:
            self.succeeded.append((row, status, latency_ms))
            self.record_soon.set()
            return
        if status is not None:
            error = f"HTTP {status}" + (
                " (redirects are not followed)" if 300 <= status < 400 else ""
            )
        await self._record_failure(row, status, latency_ms, error)

    async def _post(self, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        t = self.cfg.WEBHOOK_TIMEOUT
        async with asyncio.timeout(t):
            return await self.http.post(url, headers, body, connect_timeout=t / 2)

    async def _record_loop(self) -> None:
        while True:
            await self.record_soon.wait()
            await asyncio.sleep(0.02)  # let a few more finish
            self.record_soon.clear()
            await self._record_successes()

    async def _record_successes(self) -> None:
        batch, self.succeeded = self.succeeded, []
        by_tenant: dict[UUID, list[tuple[UUID, int, int, int]]] = {}
        for row, status, latency_ms in batch:
            by_tenant.setdefault(row["tenant_id"], []).append(
                (row["delivery_id"], row["attempts"], status, latency_ms)
            )
        for tenant_id, outcomes in by_tenant.items():
            try:
                async with tenant_transaction(self.pool, tenant_id) as conn:
                    await q.succeed_many(conn, tenant_id=tenant_id, outcomes=outcomes)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                # Sent but not recorded: the leases expire and they are sent again
                # (at least once).
                log.warning("%d deliveries sent but not recorded: %s", len(outcomes), exc)

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds until the next attempt after `attempts` attempts; None: dead."""
        schedule = self.cfg.WEBHOOK_RETRY_SCHEDULE
        if attempts > len(schedule):
            return None
        jitter = self.cfg.WEBHOOK_RETRY_JITTER
        return schedule[attempts - 1] * random.uniform(1 - jitter, 1 + jitter)

    async def _record_failure(
        self, row: asyncpg.Record, status: int | None, latency_ms: int, error: str
    ) -> None:
        delay = self.retry_delay(row["attempts"])
        dead = delay is None
        tenant_id: UUID = row["tenant_id"]
        try:
            async with tenant_transaction(self.pool, tenant_id) as conn:
                state = await q.fail(
                    conn,
                    tenant_id=tenant_id,
                    delivery_id=row["delivery_id"],
                    attempts=row["attempts"],
                    dead=dead,
                    retry_in=delay or 0.0,
                    response_status=status,
                    latency_ms=latency_ms,
                    error=error,
                )
                if (
                    state is not None
                    and dead
                    and state["enabled"]
                    and state["consecutive_dead"] >= self.cfg.WEBHOOK_DISABLE_AFTER_DEAD
                ):
                    await self._disable(conn, tenant_id, state["endpoint_id"], state)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("delivery %s: outcome not recorded: %s", row["delivery_id"], exc)

    async def _disable(
        self, conn: asyncpg.Connection, tenant_id: UUID, endpoint_id: UUID, state: dict[str, Any]
    ) -> None:
        reason = (
            f"{state['consecutive_dead']} deliveries in a row failed every attempt "
            f"(failing since {state['failing_since']:%Y-%m-%d %H:%M} UTC)"
        )
        endpoint = await q.disable_endpoint(
            conn, tenant_id=tenant_id, endpoint_id=endpoint_id, reason=reason
        )
        if endpoint is not None:
            await events.record(
                conn, "webhook.disabled", "webhook", endpoint_id, q.endpoint_json(endpoint)
            )
            log.warning("endpoint %s of tenant %s disabled: %s", endpoint_id, tenant_id, reason)
