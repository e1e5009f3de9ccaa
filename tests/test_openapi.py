"""The OpenAPI document describes every route with summaries and schemas."""

from __future__ import annotations

import uuid
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


def test_partner_routes_take_an_api_key_or_a_staff_token(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"]["scheme"] == schemes["staffToken"]["scheme"] == "bearer"
    assert schemes["staffToken"]["bearerFormat"] == "JWT"
    for method, path, op in operations(spec):
        if path.startswith("/api/v1/"):
            assert op.get("security") == [{"apiKey": []}, {"staffToken": []}], f"{method} {path}"
            assert {"401", "403", "429"} <= set(op["responses"]), f"{method} {path}"
        else:
            assert "security" not in op, f"{method} {path}"


def test_problem_schema_is_a_component(spec: dict[str, Any]) -> None:
    assert "Problem" in spec["components"]["schemas"]


def test_document_is_a_valid_openapi_31(spec: dict[str, Any]) -> None:
    """Generators and fuzzers refused the 3.0.3 document (pydantic 2's schemas are
    JSON Schema 2020-12, valid only in OpenAPI 3.1)."""
    from openapi_spec_validator import validate

    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] == "Conectades API"
    validate(spec)


def test_lists_document_paging_and_donation_posts_the_idempotency_key(
    spec: dict[str, Any],
) -> None:
    def params(method: str, path: str) -> dict[str, dict[str, Any]]:
        found = spec["paths"][path][method].get("parameters", [])
        return {p["name"]: p for p in found}

    for path in ("/api/v1/campaigns", "/api/v1/donations", "/api/public/campaigns", "/api/v1/keys"):
        names = params("get", path)
        assert {"limit", "cursor"} <= set(names), path
        assert list(names).count("limit") == 1
    partner = params("post", "/api/v1/campaigns/{campaign_id}/donations")["Idempotency-Key"]
    assert partner["in"] == "header" and not partner.get("required")
    pledge = params("post", "/api/public/{tenant}/campaigns/{slug}/donations")["Idempotency-Key"]
    assert pledge["in"] == "header" and pledge["required"] is True


def test_api_reference_needs_nothing_from_outside(api: Any) -> None:
    """/api/docs/ loads only what the API itself serves (it was a blank page offline:
    Swagger UI came from a CDN)."""
    import re

    page = httpx.get(api.url + "/api/docs/", timeout=30)
    assert page.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and not [r for r in refs if "//" in r], refs
    for ref in refs:
        r = httpx.get(api.url + ref, timeout=30)
        assert r.status_code == 200 and len(r.content) > 100, ref
    bundle = httpx.get(api.url + "/api/docs/assets/swagger-ui-bundle.js", timeout=30)
    assert "SwaggerUIBundle" in bundle.text


def test_query_parameters_say_what_the_handlers_enforce(spec: dict[str, Any]) -> None:
    def param(method: str, path: str, name: str) -> dict[str, Any]:
        found = {p["name"]: p for p in spec["paths"][path][method]["parameters"]}
        return found[name]

    limit = param("get", "/api/v1/campaigns", "limit")["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer",
        1,
        100,
        20,
    )
    status = param("get", "/api/v1/donations", "status")["schema"]
    assert status["enum"] == ["pending", "confirmed", "delivered", "cancelled"]
    assert param("get", "/api/v1/donations", "since")["schema"]["format"] == "date-time"
    assert param("get", "/api/v1/donations", "campaign_id")["schema"]["format"] == "uuid"
    assert param("get", "/api/v1/campaigns/{campaign_id}", "campaign_id")["schema"] == {
        "type": "string",
        "format": "uuid",
    }
    order = param("get", "/api/public/campaigns", "order")["schema"]
    assert order["enum"] == ["recent", "oldest", "deadline", "progress"]
    legacy = param("get", "/api/campanhas/listar", "categoria")["schema"]
    assert (legacy["type"], legacy["minimum"]) == ("integer", 1)
    key = param("post", "/api/public/{tenant}/campaigns/{slug}/donations", "Idempotency-Key")
    assert key["schema"]["maxLength"] == 255 and key["schema"]["pattern"]


def test_errors_are_problems_with_their_headers(spec: dict[str, Any]) -> None:
    assert spec["info"]["description"].count("problem+json") >= 1
    for method, path, op in operations(spec):
        for code, response in op["responses"].items():
            if int(code) >= 400:
                media = response["content"]["application/problem+json"]
                assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, path
                assert media["example"]["status"] == int(code)
            if code in ("429", "503"):
                assert "Retry-After" in response["headers"], f"{method} {path} {code}"
            if code == "204":
                assert "content" not in response, f"{method} {path}"
    assert {"400", "413", "415", "422"} <= set(
        spec["paths"]["/api/v1/campaigns"]["post"]["responses"]
    )


def test_bodies_carry_the_models_limits(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    title = schemas["CampaignCreate"]["properties"]["title"]
    assert (title["minLength"], title["maxLength"]) == (1, 200)
    assert "slug" not in schemas["CampaignCreate"].get("required", [])
    quantity = schemas["DonationCreate"]["properties"]["quantity"]
    assert (quantity["exclusiveMinimum"], quantity["maximum"]) == (0, 1_000_000_000)
    # A PATCH field may be left out but not null (except the nullable ones).
    update = schemas["CampaignUpdate"]["properties"]
    assert update["title"]["type"] == "string" and "anyOf" not in update["title"]
    assert {"type": "null"} in update["ends_at"]["anyOf"]


def test_405_names_the_allowed_methods(api: Any) -> None:
    """Sanic's router leaves `Allow` out for paths with parameters (RFC 9110 wants it)."""
    r = httpx.request("PUT", api.url + f"/api/v1/donations/{uuid.uuid4()}/confirm", timeout=30)
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert set(r.headers["allow"].split(", ")) == {"POST", "OPTIONS"}
    r = httpx.request("PUT", api.url + "/api/v1/campaigns", timeout=30)
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
