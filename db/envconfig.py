"""Settings dataclasses read from `CONECTADES_*` environment variables: the one reader
for the processes beside the Sanic app (the worker's `WorkerConfig`, the email
settings `EmailSettings`); the API's `AppConfig` is Sanic's own (api/config.py).

Each field of the dataclass is read from `CONECTADES_<NAME>` when that is set and
converted by the type of the field's default: bool (`0`, `false`, `no`, `off` and
empty are false), int, float, a tuple of floats (comma-separated), str (stripped).
A field whose variable is not set keeps its default.

It lives in db/ because db/ is the one layer both notify/ and worker/ may import
(docs/architecture.md); like the rest of db/ it imports nothing of ours."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ENV_PREFIX = "CONECTADES_"

T = TypeVar("T", bound="DataclassInstance")


class EnvValueError(ValueError):
    """A variable is set to something its field's type cannot hold."""

    def __init__(self, variable: str, raw: str) -> None:
        super().__init__(f"{variable}: not a valid value")
        self.variable = variable
        self.raw = raw


def _convert(default: Any, raw: str) -> Any:
    if isinstance(default, bool):  # before int: a bool is an int
        return raw.strip().lower() not in ("0", "false", "no", "off", "")
    if isinstance(default, tuple):
        return tuple(float(x) for x in raw.split(",") if x.strip())
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw.strip()


def read_env(cls: type[T], env: Mapping[str, str] | None = None) -> T:
    """An instance of the dataclass `cls` from `env` (default: this process's
    environment); EnvValueError names the first variable that does not convert."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(cls):
        raw = env.get(ENV_PREFIX + f.name)
        if raw is None:
            continue
        try:
            values[f.name] = _convert(getattr(cls, f.name), raw)
        except ValueError:
            raise EnvValueError(ENV_PREFIX + f.name, raw) from None
    return cls(**values)
