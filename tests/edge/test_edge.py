"""The edge through a real Nginx (rendered by edge/render.py) and the real API."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge import stats
from edge.render import EdgeConfig, render
from infra.nginx import LocalNginx, free_port, stack_edge
from tests.edge.conftest import CountingUpstream, SlowUpstream, hostport, start_edge
from tests.factories import Factory, TenantCtx
from tests.services import ApiServer, Database, api_env


def public_page(factory: Factory) -> tuple[TenantCtx, dict[str, Any], str]:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    return tenant, campaign, f"/api/public/{tenant.slug}/campaigns/{campaign['slug']}"


def cache_status(r: httpx.Response) -> str:
    return str(r.headers.get("X-Cache-Status", ""))


def test_rendered_config_passes_nginx_t(edge: LocalNginx) -> None:
    assert "test is successful" in edge.check()


def test_metrics_location_allows_only_loopback(edge: LocalNginx, edge_client: httpx.Client) -> None:
    text = edge.conf_path.read_text()
    block = text.split('location ~* "^/+metrics(?:[/?.;]|$)" {', 1)[1].split("}", 1)[0]
    assert "allow 127.0.0.1;" in block and "deny all;" in block
    assert edge_client.get("/metrics").status_code == 200


def test_public_page_miss_then_hit_then_expires(
    factory: Factory, edge_client: httpx.Client
) -> None:
    _, campaign, path = public_page(factory)
    first = edge_client.get(path)
    assert first.status_code == 200, first.text
    assert cache_status(first) == "MISS"
    second = edge_client.get(path)
    assert cache_status(second) == "HIT"
    assert second.content == first.content
    assert second.json()["slug"] == campaign["slug"]
    # nginx keeps expiry in whole seconds: "valid 1 s" ends within 1..2 s.
    time.sleep(2.1)
    third = edge_client.get(path)
    assert cache_status(third) in ("EXPIRED", "MISS", "UPDATING", "STALE")
    assert cache_status(third) != "HIT"


def test_a_burst_for_an_uncached_page_waits_for_the_api_not_a_lock(workdir: Path) -> None:
    """Eight visitors ask at once for a page the edge has not stored yet. Each is
    answered when the API has answered (after 100 ms here), not by nginx's cache
    lock: with `proxy_cache_lock on`, every request but the first slept a whole
    500-ms poll before reading the stored answer, and that set the tail of a fresh
    stack's first seconds. The API coalesces such a burst itself (`SingleFlight`, cache/memo.py)."""
    delay, visitors = 0.1, 8
    upstream = SlowUpstream(delay)
    edge = start_edge(workdir / "edge-burst", [upstream.address])
    path = "/api/public/org/campaigns/burst"
    clients = [httpx.Client(base_url=edge.url, timeout=10) for _ in range(visitors)]
    ready = threading.Barrier(visitors)

    def visit(c: httpx.Client) -> tuple[int, float, float]:
        ready.wait()
        sent = time.monotonic()
        status = c.get(path).status_code
        return status, sent, time.monotonic() - sent

    try:
        with ThreadPoolExecutor(visitors) as pool:
            answers = list(pool.map(visit, clients))
        assert [status for status, _, _ in answers] == [200] * visitors
        sent = [at for _, at, _ in answers]
        assert max(sent) - min(sent) < delay / 2, "the visitors did not ask at once"
        assert max(took for _, _, took in answers) < delay + 0.35, answers
        # The burst's answer is stored: the next visitor gets it from the edge.
        assert cache_status(clients[0].get(path)) == "HIT"
    finally:
        for c in clients:
            c.close()
        edge.stop()
        upstream.close()


def test_every_response_has_cache_status_and_security_headers(
    edge_client: httpx.Client,
) -> None:
    for path in ("/health/ready", "/api/v1/campaigns", "/static/index.html", "/nope"):
        r = edge_client.get(path)
        assert r.headers.get("X-Cache-Status"), path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"]
        assert "/" not in r.headers.get("Server", "")  # server_tokens off: no version
    assert edge_client.get("/api/v1/campaigns").headers["X-Cache-Status"] == "BYPASS"


def test_request_with_authorization_never_hit_nor_other_keys_body(
    factory: Factory, edge_client: httpx.Client
) -> None:
    tenant_a, campaign_a, path = public_page(factory)
    tenant_b = factory.tenant()
    campaign_b = factory.campaign(tenant_b)
    # Warm the public page; an authorized request for the same URL bypasses the cache.
    edge_client.get(path)
    assert cache_status(edge_client.get(path)) == "HIT"
    for _ in range(3):
        r = edge_client.get(path, headers=tenant_a.headers)
        assert cache_status(r) == "BYPASS"
    # Partner reads: each key only ever sees its own tenant's body, never cached.
    for _ in range(3):
        a = edge_client.get("/api/v1/campaigns", headers=tenant_a.headers)
        b = edge_client.get("/api/v1/campaigns", headers=tenant_b.headers)
        assert cache_status(a) == cache_status(b) == "BYPASS"
        assert [c["id"] for c in a.json()["data"]] == [campaign_a["id"]]
        assert [c["id"] for c in b.json()["data"]] == [campaign_b["id"]]
        assert "no-store" in a.headers["Cache-Control"]
    other = edge_client.get(f"/api/v1/campaigns/{campaign_a['id']}", headers=tenant_b.headers)
    assert other.status_code == 404


def test_old_listing_is_cached_with_or_without_a_token(
    factory: Factory, edge_client: httpx.Client
) -> None:
    """The old client always sends its token; the listing ignores it, so the edge
    serves one cached answer to everyone (and a partner read still bypasses)."""
    tenant = factory.tenant()
    factory.campaign(tenant)
    path = f"/api/campanhas/listar/?busca={uuid.uuid4().hex[:12]}"
    first = edge_client.get(path, headers=tenant.headers)
    assert first.status_code == 200 and cache_status(first) == "MISS"
    for headers in (tenant.headers, {"Authorization": "Bearer not-a-token"}, {}):
        again = edge_client.get(path, headers=headers)
        assert cache_status(again) == "HIT", headers
        assert again.content == first.content
    partner = edge_client.get("/api/v1/campaigns", headers=tenant.headers)
    assert cache_status(partner) == "BYPASS"


def test_stale_served_while_all_api_workers_are_stopped(
    db: Database, factory: Factory, workdir: Path
) -> None:
    _, _, path = public_page(factory)
    own_api = ApiServer(api_env(db), workers=1, log=workdir / "edge-stale-api.log")
    own_api.start()
    edge = start_edge(workdir / "edge-stale", [hostport(own_api.url)])
    try:
        with httpx.Client(base_url=edge.url, timeout=10) as c:
            fresh = c.get(path)
            assert fresh.status_code == 200 and cache_status(fresh) == "MISS"
            own_api.stop()
            time.sleep(2.1)
            stale = c.get(path)
            assert stale.status_code == 200
            assert cache_status(stale) == "STALE"
            assert stale.content == fresh.content
            # An uncached URL while the API is down: a problem+json 502.
            down = c.get(path + "-missing")
            assert down.status_code == 502
            assert down.headers["Content-Type"] == "application/problem+json"
            assert down.json()["status"] == 502
    finally:
        edge.stop()
        own_api.stop()


def test_rate_limit_per_ip_one_fast_ip_gets_429_others_none(
    factory: Factory, edge: LocalNginx
) -> None:
    _, _, path = public_page(factory)
    duration = 3.0
    results: dict[str, list[httpx.Response]] = {}

    def run(ip: str, rate: float) -> None:
        transport = httpx.HTTPTransport(local_address=ip)
        got: list[httpx.Response] = []
        with httpx.Client(base_url=edge.url, transport=transport, timeout=10) as c:
            start = time.monotonic()
            n = int(duration * rate)
            for i in range(n):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                got.append(c.get(path))
        results[ip] = got

    threads = [threading.Thread(target=run, args=("127.0.0.40", 20.0))]
    threads += [threading.Thread(target=run, args=(f"127.0.0.{i}", 5.0)) for i in range(2, 22)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fast = results["127.0.0.40"]
    limited = [r for r in fast if r.status_code == 429]
    assert limited, [r.status_code for r in fast]
    assert all(r.status_code in (200, 429) for r in fast)
    r429 = limited[0]
    assert r429.headers["Retry-After"] == "1"
    assert r429.json()["type"] == "/problems/rate-limited"  # as the API's own 429
    assert r429.headers["Content-Type"] == "application/problem+json"
    assert r429.json()["status"] == 429
    for ip, responses in results.items():
        if ip != "127.0.0.40":
            assert len(responses) == 15
            assert all(r.status_code == 200 for r in responses), ip


def test_gzip_negotiated_for_large_json(factory: Factory, edge_client: httpx.Client) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant, description="Cestas básicas " * 80)
    path = f"/api/public/{tenant.slug}/campaigns/{campaign['slug']}"
    with httpx.stream(
        "GET", edge_client.base_url.join(path), headers={"Accept-Encoding": "gzip"}
    ) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in r.headers["Vary"]
    body = json.loads(gzip.decompress(raw))
    assert body["slug"] == campaign["slug"]
    plain = edge_client.get(path, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.json() == body


def test_large_body_is_413_problem_json(
    factory: Factory, edge_client: httpx.Client, client: httpx.Client
) -> None:
    tenant = factory.tenant()
    body = b'{"title": "' + b"x" * 100_000 + b'"}'
    headers = {**tenant.headers, "Content-Type": "application/json"}
    r = edge_client.post("/api/v1/campaigns", content=body, headers=headers)
    assert r.status_code == 413
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == 413
    # The same problem type as the API's own 413 (a body past its limit, sent to it
    # directly): a client sees one type whichever layer refused the body.
    direct = client.post("/api/v1/campaigns", content=body * 20, headers=headers)
    assert direct.status_code == 413, direct.text
    assert r.json()["type"] == direct.json()["type"] == "/problems/request-entity-too-large"
    assert r.json()["title"] == direct.json()["title"]


def test_post_not_retried_when_worker_dies(workdir: Path) -> None:
    a, b = CountingUpstream(), CountingUpstream()
    # max_fails=0: neither worker is ever marked down, so each request tries both.
    edge = start_edge(workdir / "edge-retry", [a.address, b.address], max_fails=0)
    try:
        with httpx.Client(base_url=edge.url, timeout=10) as c:
            post = c.post("/api/v1/campaigns", json={"title": "x"})
            assert post.status_code == 502
            assert post.json()["type"] == "/problems/unavailable"
            assert len(a.requests) + len(b.requests) == 1
            get = c.get("/api/v1/campaigns/" + str(uuid.uuid4()))
            assert get.status_code == 502
            # The idempotent GET moved to the other worker after the first died.
            assert len(a.requests) + len(b.requests) == 3
            assert sum(r.startswith(b"GET") for r in a.requests + b.requests) == 2
    finally:
        edge.stop()
        a.close()
        b.close()


def test_post_to_dead_and_live_worker_writes_exactly_one_row(
    db: Database, factory: Factory, api: ApiServer, workdir: Path
) -> None:
    tenant = factory.tenant()
    campaign = factory.campaign(tenant)
    dead = f"127.0.0.1:{free_port()}"
    edge = start_edge(workdir / "edge-dead", [dead, hostport(api.url)])
    try:
        with httpx.Client(base_url=edge.url, timeout=10) as c:
            for _ in range(4):
                r = c.post(
                    f"/api/v1/campaigns/{campaign['id']}/donations",
                    json={
                        "item_id": campaign["items"][0]["id"],
                        "quantity": 1,
                        "donor_name": "Ana",
                        "donor_contact": "ana@example.org",
                    },
                    headers=tenant.headers,
                )
                # A refused connect never reached a worker: moving on is safe.
                assert r.status_code == 201, r.text
        created = db.fetchval(
            "SELECT count(*) FROM donation WHERE campaign_id = $1", uuid.UUID(campaign["id"])
        )
        assert created == 4
    finally:
        edge.stop()


def test_static_file_long_cache_and_etag(edge_client: httpx.Client) -> None:
    r = edge_client.get("/static/index.html")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "public, max-age=2592000, immutable"
    etag = r.headers["ETag"]
    again = edge_client.get("/static/index.html", headers={"If-None-Match": etag})
    assert again.status_code == 304
    css = edge_client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")


def test_request_id_passed_through_and_generated(edge_client: httpx.Client) -> None:
    given = edge_client.get("/health/ready", headers={"X-Request-ID": "abc-123.x"})
    assert given.headers["X-Request-ID"] == "abc-123.x"
    made = edge_client.get("/health/ready")
    assert len(made.headers["X-Request-ID"]) == 32
    bad = edge_client.get("/health/ready", headers={"X-Request-ID": "no spaces <here>"})
    assert bad.headers["X-Request-ID"] != "no spaces <here>"


def test_json_access_log_parses_and_stats_compute_ratio(
    factory: Factory, edge: LocalNginx, edge_client: httpx.Client
) -> None:
    _, _, path = public_page(factory)
    rid = uuid.uuid4().hex
    for _ in range(4):
        edge_client.get(path, headers={"X-Request-ID": rid})
    deadline = time.monotonic() + 5
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(mine) < 4:
        lines = edge.access_log.read_text().splitlines()
        entries = [json.loads(line) for line in lines]
        mine = [e for e in entries if e["request_id"] == rid]
        time.sleep(0.05)
    assert len(mine) == 4
    assert {"time", "remote_addr", "request", "status", "bytes", "request_time"} <= set(mine[0])
    assert "upstream_response_time" in mine[0]
    result = stats.compute(json.dumps(e) for e in mine)
    assert result.requests == 4
    assert result.cache["MISS"] == 1 and result.cache["HIT"] == 3
    assert result.hit_ratio == pytest.approx(0.75)
    assert stats.main([str(edge.access_log)]) == 0


def test_stats_counts_statuses_and_ignores_bypass() -> None:
    lines = [
        '{"status":"200","upstream_cache_status":"HIT"}',
        '{"status":"200","upstream_cache_status":"STALE"}',
        '{"status":"200","upstream_cache_status":"MISS"}',
        '{"status":"200","upstream_cache_status":"UPDATING"}',
        '{"status":"201","upstream_cache_status":""}',
        '{"status":"429","upstream_cache_status":""}',
        "not json",
    ]
    result = stats.compute(lines)
    assert result.requests == 6 and result.malformed == 1
    assert result.cacheable == 4 and result.hit_ratio == pytest.approx(0.75)
    assert result.statuses == {"200": 4, "201": 1, "429": 1}


def test_stats_count_what_made_the_edge_ask_the_api(tmp_path: Path) -> None:
    """A STALE answer is served from the cache but makes nginx fetch the page again
    behind it; UPDATING (another request is fetching it) and HIT ask nothing."""
    lines = [
        '{"status":"200","upstream_cache_status":"HIT"}',
        '{"status":"200","upstream_cache_status":"STALE"}',
        '{"status":"200","upstream_cache_status":"UPDATING"}',
        '{"status":"200","upstream_cache_status":"EXPIRED"}',
        '{"status":"200","upstream_cache_status":"MISS"}',
        '{"status":"201","upstream_cache_status":""}',
    ]
    result = stats.compute(lines)
    assert result.cacheable == 5 and result.asked_upstream == 3
    assert result.hit_ratio == pytest.approx(0.6)
    assert result.upstream_ratio == pytest.approx(0.6)
    assert result.as_dict()["asked_upstream"] == 3

    log = tmp_path / "access.log"
    log.write_text("\n".join(lines[:2]) + "\n")
    offset = log.stat().st_size
    with log.open("a") as f:
        f.write("\n".join(lines[2:]) + "\n")
    after = stats.read_log(log, offset)  # only a run's lines: those written after it began
    assert after.requests == 4 and after.asked_upstream == 2
    log.write_text(lines[0] + "\n")  # rotated: shorter than the offset, read whole
    assert stats.read_log(log, offset).requests == 1


def test_render_function_signature_and_nginx_t(tmp_path: Path) -> None:
    text = render(
        free_port(),
        ["127.0.0.1:1", "127.0.0.1:2"],
        prefix=tmp_path,
        client_max_body_size="1m",
        rate="5r/s",
    )
    assert "keepalive 128;" in text and "proxy_next_upstream error timeout;" in text
    assert "non_idempotent;" not in text and "non_idempotent " not in text
    assert "rate=5r/s" in text and "client_max_body_size 1m;" in text
    edge = LocalNginx(
        EdgeConfig(listen_port=free_port(), upstreams=["127.0.0.1:1"], prefix=tmp_path)
    )
    edge.render()
    assert "successful" in edge.check()


def test_reload_keeps_serving(edge: LocalNginx, edge_client: httpx.Client) -> None:
    edge.reload()
    assert edge.running()
    assert edge_client.get("/health/ready").status_code == 200


def test_stack_edge_renders_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONECTADES_EDGE_RATE", "7r/s")
    edge = stack_edge(tmp_path, free_port(), "http://127.0.0.1:8123", daemon=False)
    assert edge.status() == "stopped"
    text = edge.render().read_text()
    assert "server 127.0.0.1:8123 " in text and "rate=7r/s" in text
    assert "daemon off;" in text
    assert str(tmp_path / "edge") in text
    assert "successful" in edge.check()


def test_token_endpoint_has_stricter_per_ip_limit(edge: LocalNginx) -> None:
    # All at once: one after another, a slow login (argon2 on a busy machine) would
    # let the 1 r/s bucket refill between requests.
    def login(_: int) -> int:
        transport = httpx.HTTPTransport(local_address="127.0.0.50")
        with httpx.Client(base_url=edge.url, transport=transport, timeout=30) as c:
            body = {"username": "nobody", "password": "wrong"}
            return c.post("/api/token/", json=body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(login, range(10)))
    assert 429 in codes, codes
    assert codes.count(429) >= 3  # burst 5 (+1 r/s), then refused


def test_api_answers_are_not_corked(edge: LocalNginx) -> None:
    """With sendfile, API answers needed tcp_nopush to leave in one segment, and the
    cork held STALE answers until their background refresh ended (50-205 ms in the
    1000-user run, 1-10 ms without). API answers: no sendfile (one writev), no cork;
    static files: both."""
    text = edge.conf_path.read_text()
    http_scope = text.split("server {", 1)[0]
    assert "sendfile off;" in http_scope and "tcp_nopush off;" in http_scope
    static = text.split("location ^~ /static/ {", 1)[1].split("}", 1)[0]
    assert "sendfile on;" in static and "tcp_nopush on;" in static
    assert text.count("tcp_nopush on;") == 1 and text.count("sendfile on;") == 1


def test_a_large_access_log_is_moved_aside_when_nginx_starts(tmp_path: Path) -> None:
    """Over the limit: the old log becomes access.log.1 (replacing the previous one)
    and nginx starts a new one; under the limit the log stays and nginx appends."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    log.write_text("old line\n" * 200)  # 1,800 bytes
    (logs / "access.log.1").write_text("older\n")
    edge = LocalNginx(
        EdgeConfig(listen_port=free_port(), upstreams=["127.0.0.1:9"], prefix=tmp_path),
        rotate_bytes=1000,
    )
    try:
        edge.start()
        assert (logs / "access.log.1").read_text() == "old line\n" * 200
        httpx.get(edge.url + "/no-such-path", timeout=5)
        edge.stop()
        new = log.read_text()
        assert "old line" not in new and "/no-such-path" in new
        # Under the limit now: kept in place on the next start.
        edge.rotate_bytes = 10 * len(new)
        edge.start()
        edge.stop()
        assert log.read_text() == new
        assert (logs / "access.log.1").read_text() == "old line\n" * 200
    finally:
        edge.stop()


def test_an_access_log_sent_elsewhere_is_never_moved(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text("x" * 100)
    config = EdgeConfig(
        listen_port=free_port(), upstreams=["127.0.0.1:9"], prefix=tmp_path,
        access_log_path=str(tmp_path / "elsewhere.log"),
    )  # fmt: skip
    assert LocalNginx(config, rotate_bytes=10).rotate_access_log() is False
    assert (logs / "access.log").read_text() == "x" * 100
