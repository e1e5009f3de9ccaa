"""The SSRF rule on its own (worker/destinations.py): which addresses are public,
how hosts are spelled, and the check after resolution. Only loopback and address
literals are resolved here; nothing is connected to."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import pytest

from worker.destinations import (
    DestinationRefused,
    check_url,
    is_public,
    literal_address,
    parse_allowed,
    resolve_vetted,
)

ALLOWED = parse_allowed("127.0.0.1")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.255.255.254", "::1",  # loopback
        "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1",  # RFC 1918
        "fc00::1", "fd12:3456::1",  # unique local
        "169.254.0.1", "169.254.169.254", "fe80::1",  # link-local, cloud metadata
        "0.0.0.0", "0.1.2.3", "::",  # this network, unspecified
        "100.64.0.1", "100.127.255.255",  # carrier-grade NAT
        "224.0.0.1", "239.255.255.250", "ff02::1",  # multicast
        "240.0.0.1", "255.255.255.255",  # reserved, broadcast
        "192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1",  # documentation
        "198.18.0.1", "192.0.0.8",  # benchmarking, IETF
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
        "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible
        "2002:7f00:1::", "2002:a9fe:a9fe::",  # 6to4 of loopback and metadata
        "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",  # NAT64 of metadata and loopback
        "2001:0:4136:e378::1",  # Teredo
        "fec0::1",  # site-local
    ],
)  # fmt: skip
def test_not_public(address: str) -> None:
    assert not is_public(ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public(address: str) -> None:
    assert is_public(ip_address(address))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("[::1]", "::1"),
        ("hooks.example.org", None),
        ("deadbeef.example", None),
    ],
)
def test_literal_address_reads_every_spelling(host: str, address: str | None) -> None:
    found = literal_address(host)
    assert (str(found) if found else None) == (str(ip_address(address)) if address else None)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2/", "http://[::1]/", "http://0.0.0.0/", "http://2130706433/",
        "http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "http://10.1.1.1/",
        "http://169.254.169.254/", "http://[fe80::1]/", "http://[fd00::1]/",
        "http://100.64.0.1/", "http://localhost/", "http://db.internal/",
    ],
)  # fmt: skip
def test_check_url_refuses_non_public_literals(url: str) -> None:
    assert check_url(url, ALLOWED) is not None
    assert check_url(url, frozenset()) is not None


def test_check_url_allows_exactly_the_listed_spelling() -> None:
    assert check_url("http://127.0.0.1:8080/hook", ALLOWED) is None
    assert check_url("http://127.0.0.1:8080/hook", frozenset()) is not None
    assert check_url("http://[::1]/", parse_allowed("[::1]")) is None
    assert check_url("http://receiver.internal/", parse_allowed("receiver.internal")) is None


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.2",
        "::1",
        "[::1]",
        "0.0.0.0",
        "2130706433",
        "0x7f.1",
        "::ffff:127.0.0.1",
        "localhost",
    ],
)
def test_resolution_refuses_loopback_spellings_other_than_the_allowed_one(host: str) -> None:
    with pytest.raises(DestinationRefused, match="not a public address"):
        asyncio.run(resolve_vetted(host, 80, ALLOWED))


def test_resolution_allows_the_allowed_host() -> None:
    assert asyncio.run(resolve_vetted("127.0.0.1", 80, ALLOWED)) == ["127.0.0.1"]
    with pytest.raises(DestinationRefused):
        asyncio.run(resolve_vetted("127.0.0.1", 80, frozenset()))
