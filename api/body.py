"""Request bodies: JSON parsed and validated in one pass by pydantic (strict),
so every problem names its field and nothing reaches SQL unchecked."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from sanic import Request

from api.errors import MalformedJson, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=pydantic.BaseModel)


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def validation_errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def parse_body(request: Request, model: type[M]) -> M:
    ctype = request.headers.get("content-type", "application/json")
    if ctype.split(";")[0].strip().lower() not in ("application/json", ""):
        raise UnsupportedMediaType("Send the body as application/json.")
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        # Read as it came, a compressed body would be "not valid JSON"; say why instead.
        raise UnsupportedMediaType(
            f"Content-Encoding {coding!r} is not accepted; send the body uncompressed.",
            headers={"Accept-Encoding": "identity"},
        )
    raw = request.body or b""
    if not raw.strip():
        raise MalformedJson("The request body is empty; send a JSON object.")
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        errors = validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJson(f"The body is not valid JSON: {errors[0]['message']}") from None
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise ValidationFailed(summary, errors=errors) from None
