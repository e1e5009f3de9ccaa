from __future__ import annotations

import httpx


def test_health_is_ok(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "workers": {"configured": 1, "alive": 1, "restarts": 0, "blocked": []},
    }


def test_ready_checks_postgres(client: httpx.Client) -> None:
    r = client.get("/health/ready")
    assert r.status_code == 200
    assert r.json()["checks"]["postgres"] == "ok"


def test_unknown_route_is_problem_json(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404


def test_wrong_method_is_problem_json(client: httpx.Client) -> None:
    r = client.delete("/health")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"


def test_openapi_spec_is_served(client: httpx.Client) -> None:
    r = client.get("/api/docs/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert "/health/ready" in spec["paths"]
    assert {"apiKey", "staffToken"} <= set(spec["components"]["securitySchemes"])


def test_docs_ui_is_served(client: httpx.Client) -> None:
    r = client.get("/api/docs/")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
