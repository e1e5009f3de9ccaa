"""Schemathesis hooks for the fuzz runs (tests/fuzz/schemathesis.toml loads them).

The run authenticates with one API key of its own tenant. Its stateful phase
follows links (GET /api/v1/keys → DELETE /api/v1/keys/{key_id}) and would revoke
that key, after which every partner operation answers 401 and tests nothing: a
DELETE of that one key id is sent for a random id instead (still a real request,
answered 404)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis

PROTECTED_KEY_ID = os.environ.get("CONECTADES_FUZZ_KEY_ID", "")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    params = case.path_parameters or {}
    if case.method.upper() == "DELETE" and str(params.get("key_id")) == PROTECTED_KEY_ID:
        params["key_id"] = str(uuid.uuid4())
