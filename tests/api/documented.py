"""What each route of the real app documents as its success response (api/openapi.py
`doc()`): status, media type and pydantic model; and a check that a body has no field
its model does not name. Used by tests/api/test_response_models.py."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, RootModel
from sanic import Sanic

# The methods Sanic and sanic-ext answer by themselves for every route.
AUTOMATIC = frozenset({"HEAD", "OPTIONS"})
_PARAM = re.compile(r"<([^:>]+)(?::[^>]+)?>")
_REF = "#/components/schemas/"


@dataclass(frozen=True)
class Documented:
    """A route's documented success: `model` is None for a body that is not a
    documented JSON model (204, text, CSV) and for an undocumented route."""

    status: int | None
    media: str | None
    model: type[BaseModel] | None


def operation(method: str, path: str) -> str:
    """`GET /api/v1/campaigns/{campaign_id}` from Sanic's `api/v1/campaigns/<campaign_id:str>`."""
    return f"{method} /" + _PARAM.sub(r"{\1}", path)


def _model_named(handler: Any, name: str) -> type[BaseModel]:
    """The model `doc(response=...)` named: the handler's module imports or defines it."""
    found = getattr(sys.modules[handler.__module__], name, None)
    assert isinstance(found, type) and issubclass(found, BaseModel), (handler, name)
    assert found.__name__ == name
    return found


def documented_operations(app: Sanic) -> dict[str, Documented]:  # type: ignore[type-arg]
    """Every method of every route the app registers, with what it documents."""
    out: dict[str, Documented] = {}
    for route in app.router.routes:
        extra = getattr(route.handler, "_openapi_extra", None)
        doc = Documented(None, None, None)
        if extra is not None:
            (status, success), *more = [
                (int(code), r) for code, r in extra["responses"].items() if code.startswith("2")
            ]
            assert not more, f"{route.name} documents several successes"
            content = success.get("content", {})
            media, model = None, None
            if content:
                ((media, spec),) = content.items()
                ref = spec["schema"].get("$ref", "")
                if ref.startswith(_REF):
                    model = _model_named(route.handler, ref.removeprefix(_REF))
            doc = Documented(status, media, model)
        for method in sorted(route.methods - AUTOMATIC):
            key = operation(method, route.path)
            assert key not in out, f"{key} registered twice"
            out[key] = doc
    return out


def undocumented_fields(value: Any, body: Any, at: str = "") -> list[str]:
    """Paths of the keys in `body` (JSON) that its validated model `value` does not
    declare (models ignore unknown keys, so validation alone would not see them)."""
    if isinstance(value, RootModel):
        return undocumented_fields(value.root, body, at)
    if isinstance(value, BaseModel) and isinstance(body, dict):
        fields = {(f.alias or name): name for name, f in type(value).model_fields.items()}
        out = [f"{at}.{key}" for key in body if key not in fields]
        for key, name in fields.items():
            if key in body:
                out += undocumented_fields(getattr(value, name), body[key], f"{at}.{key}")
        return out
    if isinstance(value, list) and isinstance(body, list):
        return [
            path
            for i, (v, b) in enumerate(zip(value, body, strict=True))
            for path in undocumented_fields(v, b, f"{at}[{i}]")
        ]
    if isinstance(value, dict) and isinstance(body, dict):
        return [
            path
            for key, v in value.items()
            for path in undocumented_fields(v, body.get(key), f"{at}.{key}")
        ]
    return []


def listed(value: BaseModel) -> list[Any] | None:
    """The items of a list or page model (`data`, or a bare array), else None."""
    if isinstance(value, RootModel) and isinstance(value.root, list):
        return value.root
    data = getattr(value, "data", None)
    if "data" in type(value).model_fields and isinstance(data, list):
        return data
    return None
