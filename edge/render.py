"""Render the edge's nginx.conf (the template edge/templates/nginx.conf.j2, filled from
an `EdgeConfig`): microcache, per-IP limits, gzip, static files, JSON log.

Everything the server writes (pid, logs, temp files, cache) lives under the prefix
and the directories given, so it runs as a project-local process:

    nginx -p var/edge -c var/edge/nginx.conf

Usage (from the repository root):

    .venv/bin/python -m edge.render --upstream 127.0.0.1:8000 --listen 8080
    .venv/bin/python -m edge.render --help

`--target compose|k8s` renders the same edge for a container instead (see
`container_config` and docs/deploy.md): listen on all interfaces, upstream by
service name, logs to stdout/stderr, `daemon off`, paths inside the image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

__all__ = [
    "AUTH_IGNORED_PREFIXES",
    "CSS_URL",
    "PAGE_LOCATIONS",
    "PUBLIC_PREFIXES",
    "TARGETS",
    "EdgeConfig",
    "container_config",
    "main",
    "render",
]

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_PREFIX = ROOT / "var" / "edge"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
# The donor pages' style sheet, served from STATIC_DIR under /static/ (long-lived,
# immutable); its content hash in the link, so a changed sheet gets a new URL. The
# API's pages (api/html.py) and the edge's own error pages link it the same way.
CSS_URL = (
    "/static/pages.css?v="
    + hashlib.sha256((STATIC_DIR / "pages.css").read_bytes()).hexdigest()[:10]
)

# Public GETs that the microcache may serve (anonymous, identical for everyone).
PUBLIC_PREFIXES = ("/api/public/", "/api/campanhas/listar")
# Of those, the ones cached even when the request has an `Authorization` header:
# the old API's listing ignores it (api/routes/legacy.py: any token, valid or not,
# gets the same public answer), and the old client always sends its staff token, so
# bypassing on it sent every old client's listing (817 KB for 500 campaigns) to the
# API: 14 % of its CPU in the 1000-user mix.
AUTH_IGNORED_PREFIXES = ("/api/campanhas/listar",)
# The donor pages (api/routes/pages.py), cached the same way: the directory at
# exactly `/` (not every path: unknown ones go to the API uncached) and everything
# under /o/. Their POSTs (the pledge form) pass through: only GET and HEAD are cached.
PAGE_LOCATIONS = ("= /", "^~ /o/")
# Where a person reads the answer (the pages and the e-mailed confirmation links): the
# edge's own errors there are HTML pages in pt-BR (status, title, text), not JSON.
# Most matter when the API is down and the page was never cached (or is past its
# stale bound): the browser shows this instead of a JSON problem.
PAGE_PROBLEMS = (
    (413, "Dados grandes demais",
     "O que você enviou é grande demais. Encurte a mensagem e tente de novo."),
    (429, "Muitas requisições",
     "Você fez muitas requisições em pouco tempo. Espere alguns segundos e tente de novo."),
    (502, "Serviço indisponível",
     "Tivemos um problema do nosso lado. Tente de novo em alguns instantes."),
    (503, "Serviço indisponível",
     "Tivemos um problema do nosso lado. Tente de novo em alguns instantes."),
    (504, "Serviço indisponível",
     "O serviço demorou demais para responder. Tente de novo em alguns instantes."),
)  # fmt: skip

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)

# nginx-generated errors answered as problem+json (status, type slug, title, detail),
# with the problem type the API gives the same condition (api/errors.py), so a client
# sees one `type` whichever layer answered.
PROBLEMS = (
    (413, "request-entity-too-large", "Request Entity Too Large",
     "The request body exceeds the edge limit."),
    (429, "rate-limited", "Too Many Requests",
     "Rate limit exceeded for this client; retry later."),
    (502, "unavailable", "Bad Gateway", "The API is not answering."),
    (503, "unavailable", "Service Unavailable", "The API is not available."),
    (504, "unavailable", "Gateway Timeout", "The API did not answer in time."),
)  # fmt: skip

# Answers that say a public resource is gone: cached for the microcache period too.
GONE_STATUSES = "404 410"

LOG_FIELDS = (
    ("time", "$time_iso8601"),
    ("remote_addr", "$remote_addr"),
    ("request", "$request"),
    ("method", "$request_method"),
    ("uri", "$request_uri"),
    ("status", "$status"),
    ("bytes", "$body_bytes_sent"),
    ("request_time", "$request_time"),
    ("upstream_addr", "$upstream_addr"),
    ("upstream_status", "$upstream_status"),
    ("upstream_response_time", "$upstream_response_time"),
    ("upstream_cache_status", "$upstream_cache_status"),
    ("request_id", "$edge_request_id"),
    ("user_agent", "$http_user_agent"),
)


@dataclass
class EdgeConfig:
    listen_port: int
    upstreams: Sequence[str]
    prefix: Path = DEFAULT_PREFIX
    cache_dir: Path | None = None
    log_dir: Path | None = None
    static_dir: Path = STATIC_DIR
    listen_host: str = "127.0.0.1"
    daemon: bool = True
    user: str | None = None
    worker_processes: str = "auto"
    worker_connections: int = 4096
    client_max_body_size: str = "64k"
    rate: str = "10r/s"
    burst: int = 20
    token_rate: str = "1r/s"  # noqa: S105 (a rate, not a secret)
    token_burst: int = 5
    conn_limit: int = 64
    # Idle upstream connections kept per nginx worker: enough that bursts of
    # background refreshes reuse them instead of opening new ones.
    keepalive: int = 128
    max_fails: int = 1
    per_ip_limits: bool = True  # off only for benchmarks of the cache alone
    connect_timeout: str = "2s"
    send_timeout: str = "10s"
    read_timeout: str = "30s"
    next_upstream_tries: int = 2
    next_upstream_timeout: str = "5s"
    cache_valid: str = "1s"
    cache_max_size: str = "256m"
    extra_public_prefixes: Sequence[str] = field(default_factory=tuple)
    # Containers (all None/False keep the local, project-local rendering unchanged):
    # `resolver` re-resolves upstream names at run time; `resolve_upstreams` adds the
    # `resolve` server parameter (open-source nginx >= 1.27.3) so a scaled service's
    # new replicas get traffic without a reload.
    resolver: str | None = None
    resolve_upstreams: bool = False
    # Upstream connections are recycled after this long, so replicas added behind a
    # Kubernetes Service (one virtual IP, balanced per connection) get their share.
    upstream_keepalive_time: str | None = None
    # Idle upstream connections are closed by the edge after this long. Shorter than
    # the API's DRAIN_TIMEOUT (5 s, api/config.py): a draining worker waits for the
    # edge to close them, so it never closes one the edge may be sending a POST on.
    upstream_keepalive_timeout: str = "4s"
    temp_dir: Path | None = None  # default <prefix>/tmp
    access_log_path: str | None = None  # e.g. /dev/stdout; default <logs>/access.log
    error_log_path: str | None = None  # e.g. stderr; default <logs>/error.log

    @property
    def cache_path(self) -> Path:
        return self.cache_dir or self.prefix / "cache"

    @property
    def logs(self) -> Path:
        return self.log_dir or self.prefix / "logs"

    @property
    def access_log(self) -> Path:
        return self.logs / "access.log"


TARGETS = ("local", "compose", "k8s")
# Inside the edge image (infra/edge.Dockerfile): the config is read-only, these two
# are the only writable paths (tmpfs in compose, emptyDir volumes on Kubernetes).
CONTAINER_STATE = Path("/var/lib/edge")  # pid file and temp files
CONTAINER_CACHE = Path("/var/cache/edge")  # the microcache
CONTAINER_STATIC = Path("/usr/share/edge/static")
CONTAINER_PORT = 8080  # unprivileged: the edge runs as a non-root user
# Docker's embedded DNS server, present in every user-defined compose network.
DOCKER_DNS = "127.0.0.11"


def container_config(target: str, **overrides: object) -> EdgeConfig:
    """The edge as run in a container for `target` ("compose" or "k8s").

    compose: `api` names every replica of the scaled service (Docker DNS answers all
    of their addresses), so nginx re-resolves it every few seconds (`resolve`,
    nginx >= 1.27.3) and spreads requests and keepalive connections over them.
    k8s: `api` is a Service with one stable virtual IP; it is resolved once at start
    and connections are recycled (`keepalive_time`) so new pods get traffic."""
    if target not in ("compose", "k8s"):
        raise ValueError(f"unknown container target {target!r} (compose or k8s)")
    options: dict[str, object] = {
        "listen_port": CONTAINER_PORT,
        "listen_host": "0.0.0.0",
        "upstreams": ["api:8000"],
        "prefix": CONTAINER_STATE,
        "temp_dir": CONTAINER_STATE,
        "cache_dir": CONTAINER_CACHE,
        "static_dir": CONTAINER_STATIC,
        "daemon": False,  # nginx is the container's main process
        "access_log_path": "/dev/stdout",
        "error_log_path": "stderr",
    }
    if target == "compose":
        options.update(resolver=DOCKER_DNS, resolve_upstreams=True)
    else:
        # One worker per pod: the pod's CPU limit is 1 and the HPA adds pods
        # (`auto` would count the node's CPUs, not the pod's share).
        options.update(upstream_keepalive_time="30s", worker_processes="1")
    options.update(overrides)
    return EdgeConfig(**options)  # type: ignore[arg-type]


def _q(value: str) -> str:
    """A single-quoted nginx string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _headers(extra: Sequence[tuple[str, str]] = ()) -> str:
    """add_header lines for a location: nginx only inherits add_header from the server
    level when a location defines none, so every location repeats the full set."""
    lines = [*SECURITY_HEADERS, ("X-Request-ID", "$edge_request_id")]
    lines.append(("X-Cache-Status", "$edge_cache_status"))
    lines.extend(extra)
    return "".join(f"        add_header {name} {_q(value)} always;\n" for name, value in lines)


@dataclass(frozen=True)
class _Problem:
    status: int
    body: str
    headers: tuple[tuple[str, str], ...]


def _problem(status: int, body: str) -> _Problem:
    """An edge answer of its own: never stored; `Retry-After` where waiting helps."""
    if "$" in body:  # `return` text is an nginx string: `$` would start a variable
        raise ValueError(f"the edge's {status} answer must not contain $")
    # 502 and 504 too: the API is restarting or busy (a careful client backs off for a
    # second instead of hammering; seen in the chaos run's helper kill).
    retry = (("Retry-After", "1"),) if status in (429, 502, 503, 504) else ()
    return _Problem(status, body, (("Cache-Control", "no-store"), *retry))


def _problems() -> list[_Problem]:
    return [
        _problem(
            status,
            json.dumps(
                {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail},
                separators=(",", ":"),
            ),
        )
        for status, slug, title, detail in PROBLEMS
    ]


def _page_problems() -> list[_Problem]:
    template = _PAGES.get_template("page_error.html.j2")
    return [
        _problem(status, template.render(title=title, text=text, css_url=CSS_URL))
        for status, title, text in PAGE_PROBLEMS
    ]


def _log_format() -> str:
    parts = [f'"{name}":"{var}"' for name, var in LOG_FIELDS]
    return "{" + ",".join(parts) + "}"


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # nginx syntax, not HTML; values are quoted where nginx needs it  # noqa: S701
)
_TEMPLATES.filters["q"] = _q
# The error pages are HTML: escaped like the API's pages.
_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render(cfg: EdgeConfig | int, upstreams: Sequence[str] | None = None, **options: object) -> str:
    """The complete nginx.conf text (paths absolute), for an EdgeConfig or for
    `render(listen_port, upstreams, cache_dir=..., log_dir=..., ...)`: the template
    edge/templates/nginx.conf.j2 filled from the settings."""
    if not isinstance(cfg, EdgeConfig):
        cfg = EdgeConfig(listen_port=cfg, upstreams=list(upstreams or ()), **options)  # type: ignore[arg-type]
    if not cfg.upstreams:
        raise ValueError("at least one upstream is needed")
    prefix = cfg.prefix.resolve()
    logs = cfg.logs.resolve()
    public = [*PUBLIC_PREFIXES, *cfg.extra_public_prefixes]
    return _TEMPLATES.get_template("nginx.conf.j2").render(
        cfg=cfg,
        prefix=prefix,
        tmp=(cfg.temp_dir or prefix / "tmp").resolve(),
        access_log=cfg.access_log_path or str(logs / "access.log"),
        error_log=cfg.error_log_path or str(logs / "error.log"),
        cache_path=cfg.cache_path.resolve(),
        static=str(cfg.static_dir.resolve()).rstrip("/") + "/",
        log_format=_log_format(),
        cached_locations=[
            *((f"^~ {p}", p in AUTH_IGNORED_PREFIXES, False) for p in public),
            *((match, False, True) for match in PAGE_LOCATIONS),
        ],
        gone_statuses=GONE_STATUSES,
        headers=_headers,
        problems=_problems(),
        page_problems=_page_problems(),
    )


def write(cfg: EdgeConfig, path: Path | None = None) -> Path:
    """Render to `path` (default <prefix>/nginx.conf), creating the directories."""
    path = path or cfg.prefix / "nginx.conf"
    for d in (
        cfg.prefix,
        cfg.temp_dir or cfg.prefix / "tmp",
        cfg.logs,
        cfg.cache_path,
        path.parent,
    ):
        d.mkdir(parents=True, exist_ok=True)
    path.write_text(render(cfg))
    return path


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m edge.render", description=__doc__.split("\n")[0])
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="local",
        help="local (project-local process, default) or a container: compose, k8s",
    )
    p.add_argument(
        "--listen",
        type=int,
        default=None,
        help="port to listen on (env CONECTADES_EDGE_PORT, default 8080)",
    )
    p.add_argument(
        "--listen-host",
        default=None,
        help="address to listen on (env CONECTADES_EDGE_HOST, default 127.0.0.1; "
        "containers 0.0.0.0)",
    )
    p.add_argument("--worker-processes", default=None, help="nginx worker_processes")
    p.add_argument(
        "--upstream",
        action="append",
        default=None,
        help="API worker host:port, repeatable (env CONECTADES_EDGE_UPSTREAMS, comma-separated)",
    )
    p.add_argument("--prefix", type=Path, default=DEFAULT_PREFIX)
    p.add_argument("--out", type=Path, default=None, help="default <prefix>/nginx.conf")
    p.add_argument("--static-dir", type=Path, default=STATIC_DIR)
    p.add_argument("--no-daemon", action="store_true", help="render `daemon off`")
    p.add_argument("--body-limit", default=env("CONECTADES_EDGE_BODY_LIMIT", "64k"))
    p.add_argument("--rate", default=env("CONECTADES_EDGE_RATE", "10r/s"))
    p.add_argument("--burst", type=int, default=int(env("CONECTADES_EDGE_BURST", "20")))
    p.add_argument("--token-rate", default=env("CONECTADES_EDGE_TOKEN_RATE", "1r/s"))
    p.add_argument("--conn-limit", type=int, default=int(env("CONECTADES_EDGE_CONN_LIMIT", "64")))
    p.add_argument("--stdout", action="store_true", help="print instead of writing")
    return p


def _container_main(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {
        "client_max_body_size": args.body_limit,
        "rate": args.rate,
        "burst": args.burst,
        "token_rate": args.token_rate,
        "conn_limit": args.conn_limit,
    }
    for name, value in (
        ("listen_port", args.listen),
        ("listen_host", args.listen_host),
        ("upstreams", args.upstream),
        ("worker_processes", args.worker_processes),
    ):
        if value is not None:
            overrides[name] = value
    text = render(container_config(args.target, **overrides))
    if args.stdout or args.out is None:
        # Never create the container's paths on this machine: print, or write one file.
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.target != "local":
        return _container_main(args)
    env = os.environ.get
    if args.listen is None:
        args.listen = int(env("CONECTADES_EDGE_PORT", "8080"))
    if args.listen_host is None:
        args.listen_host = env("CONECTADES_EDGE_HOST", "127.0.0.1")
    upstreams = args.upstream or [
        u.strip()
        for u in os.environ.get("CONECTADES_EDGE_UPSTREAMS", "127.0.0.1:8000").split(",")
        if u.strip()
    ]
    cfg = EdgeConfig(
        listen_port=args.listen,
        listen_host=args.listen_host,
        upstreams=upstreams,
        prefix=args.prefix.resolve(),
        static_dir=args.static_dir,
        daemon=not args.no_daemon,
        client_max_body_size=args.body_limit,
        rate=args.rate,
        burst=args.burst,
        token_rate=args.token_rate,
        conn_limit=args.conn_limit,
    )
    if args.worker_processes is not None:
        cfg.worker_processes = args.worker_processes
    if args.stdout:
        print(render(cfg), end="")
    else:
        print(write(cfg, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
