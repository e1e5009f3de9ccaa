"""The app's type, `Sanic[AppConfig, AppContext]`: with it mypy checks every
`app.config.X` against api/config.py and every `app.ctx.X` against api/context.py.
Modules below api/ (db/, tenants/, cache/) take `Sanic[Any, Any]` instead: they do
not know the API's config and context classes."""

from __future__ import annotations

from sanic import Sanic

from api.config import AppConfig
from api.context import AppContext

App = Sanic[AppConfig, AppContext]
