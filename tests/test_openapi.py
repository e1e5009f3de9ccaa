"""The OpenAPI document describes every route with summaries and schemas."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

METHODS = ("get", "post", "patch", "put", "delete")


@pytest.fixture(scope="module")
def spec(api: Any) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(api.url + "/api/docs/openapi.json", timeout=30).json()
    return data


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in METHODS and path.startswith("/api/")
    ]


def test_every_api_operation_has_a_summary(spec: dict[str, Any]) -> None:
    missing = [f"{m.upper()} {p}" for m, p, op in operations(spec) if not op.get("summary")]
    assert not missing


def test_every_write_with_a_body_documents_its_schema(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        if method in ("post", "patch", "put") and "requestBody" in op:
            content = op["requestBody"]["content"]["application/json"]
            assert "$ref" in content["schema"] or content["schema"].get("properties"), path


def test_every_operation_documents_a_success_response(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        codes = [c for c in op.get("responses", {}) if str(c).startswith("2")]
        assert codes, f"{method.upper()} {path} documents no success response"
        for code in codes:
            if str(code) != "204":
                assert "content" in op["responses"][code], f"{method.upper()} {path} {code}"


def test_partner_routes_declare_bearer_security(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        if path.startswith("/api/v1/"):
            assert op.get("security") == [{"bearer": []}], f"{method.upper()} {path}"


def test_problem_schema_is_a_component(spec: dict[str, Any]) -> None:
    assert "Problem" in spec["components"]["schemas"]
