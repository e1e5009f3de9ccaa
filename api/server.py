"""The app factory: `sanic api.server:create_app --factory`. It only wires."""

from __future__ import annotations

from importlib import import_module

import orjson
from sanic import Sanic

from api.audit import setup_audit
from api.auth import add_rate_limit_headers, principal_from_request
from api.body_timeout import setup_body_timeout
from api.cache import default_x_cache, public_gone_is_public
from api.config import AppConfig
from api.context import AppContext
from api.drain import setup_drain
from api.errors import setup_errors
from api.gc_tuning import setup_gc
from api.lifecycle import setup_lifecycle
from api.listen import setup_listen_backlog
from api.openapi import setup_openapi
from api.pagination import Page
from api.request_context import setup_request_context
from api.supervision import setup_supervision
from db.crypto import setup_contact_keys
from tenants.authlimit import setup_failure_limiter
from tenants.principal import Principal

BLUEPRINTS = (
    "api.routes.health",
    "api.routes.campaigns",
    "api.routes.items",
    "api.routes.donations",
    "api.routes.events",
    "api.routes.export",
    "api.routes.keys",
    "api.routes.webhooks",
    "api.routes.public",
    "api.routes.tokens",
    "api.routes.legacy",
    "api.routes.cache",
    "api.routes.metrics",
    "api.routes.pages",
    "api.routes.audit",
    "api.routes.confirm",
)


def _dumps(obj: object) -> bytes:
    # The OpenAPI document has integer keys (status codes).
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def create_app(config: AppConfig | object | None = None) -> Sanic[AppConfig, AppContext]:
    # The Sanic CLI passes its argument namespace to the factory; config comes from env.
    config = config if isinstance(config, AppConfig) else AppConfig()
    config.check()
    app: Sanic[AppConfig, AppContext] = Sanic(
        "conectades", config=config, ctx=AppContext(), dumps=_dumps
    )
    setup_errors(app)
    setup_request_context(app)
    setup_openapi(app)
    setup_lifecycle(app)
    setup_contact_keys(app)
    setup_failure_limiter(app)
    setup_listen_backlog(app)
    setup_body_timeout(app)
    setup_gc(app)
    setup_drain(app)
    setup_supervision(app)
    setup_audit(app)
    app.register_middleware(default_x_cache, "response")
    app.register_middleware(public_gone_is_public, "response")
    app.register_middleware(add_rate_limit_headers, "response")
    app.ext.add_dependency(Principal, principal_from_request)
    app.ext.add_dependency(Page, Page.from_request)
    for name in BLUEPRINTS:
        app.blueprint(import_module(name).bp)
    return app
