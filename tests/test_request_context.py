"""X-Request-ID is passed through or generated; X-Real-IP is believed only from the edge."""

from __future__ import annotations

import httpx


def test_request_id_is_passed_through(client: httpx.Client) -> None:
    r = client.get("/health", headers={"X-Request-ID": "edge-abc.123"})
    assert r.headers["X-Request-ID"] == "edge-abc.123"


def test_request_id_is_generated_when_missing_or_malformed(client: httpx.Client) -> None:
    generated = client.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32
    replaced = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert replaced.headers["X-Request-ID"] != "bad id with spaces"


def test_request_id_is_on_problem_responses(client: httpx.Client) -> None:
    r = client.get("/nope", headers={"X-Request-ID": "trace-404"})
    assert r.status_code == 404
    assert r.headers["X-Request-ID"] == "trace-404"
