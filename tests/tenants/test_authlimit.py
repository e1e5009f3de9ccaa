"""Failed authentications per client address: burst, steady rate, refill, bound."""

from __future__ import annotations

import pytest

from tenants.authlimit import FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_of_failures_then_refused_until_refilled() -> None:
    clock = Clock()
    limiter = FailureLimiter(rate=1, burst=5, clock=clock)
    for _ in range(5):
        assert limiter.retry_after("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(1.0)
    assert limiter.retry_after_header("10.0.0.1") == "1"
    assert limiter.retry_after("10.0.0.2") == 0  # another address is not affected
    clock.now += 1
    assert limiter.retry_after("10.0.0.1") == 0  # one more failure allowed per second
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") > 0
    clock.now += 5
    for _ in range(5):  # the whole burst is back
        assert limiter.retry_after("10.0.0.1") == 0
        limiter.failed("10.0.0.1")


def test_steady_failures_at_the_rate_are_never_refused() -> None:
    clock = Clock()
    limiter = FailureLimiter(rate=2, burst=1, clock=clock)
    for _ in range(100):
        assert limiter.retry_after("c") == 0
        limiter.failed("c")
        clock.now += 0.5


def test_table_is_bounded_dropping_refilled_then_oldest() -> None:
    clock = Clock()
    limiter = FailureLimiter(rate=1, burst=3, max_clients=3, clock=clock)
    for client in ("a", "b", "c"):
        limiter.failed(client)
    clock.now += 2  # a, b and c have refilled
    limiter.failed("d")
    assert len(limiter) == 1
    for client in ("e", "f", "g"):
        limiter.failed(client)
    assert len(limiter) == 3 and limiter.retry_after("d") == 0


def test_zero_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        FailureLimiter(rate=0, burst=1)
