"""X-Request-ID is passed through or generated; X-Real-IP is believed only from the edge."""

from __future__ import annotations

import httpx
import pytest

from api.request_context import TrustedProxies


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


def test_trusted_proxies_take_exact_addresses_and_cidr_ranges() -> None:
    trusted = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8,fd00::/8")
    assert trusted.trusts("127.0.0.1")
    assert trusted.trusts("10.42.7.3")
    assert trusted.trusts("fd00::1")
    assert not trusted.trusts("127.0.0.2")
    assert not trusted.trusts("11.0.0.1")
    assert not trusted.trusts("")
    assert not trusted.trusts("not-an-ip")


def test_trusted_proxies_refuse_a_malformed_range() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        TrustedProxies.parse("10.0.0.0/99")
