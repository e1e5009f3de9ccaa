"""Render the edge's nginx.conf: microcache, per-IP limits, gzip, static files, JSON log.

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
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
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

# Public GETs that the microcache may serve (anonymous, identical for everyone).
PUBLIC_PREFIXES = ("/api/public/", "/api/campanhas/listar")
# The donor pages (api/routes/pages.py), cached the same way: the directory at
# exactly `/` (not every path: unknown ones go to the API uncached) and everything
# under /o/. Their POSTs (the pledge form) pass through: only GET and HEAD are cached.
PAGE_LOCATIONS = ("= /", "^~ /o/")

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)

# nginx-generated errors answered as problem+json (status, title, detail).
PROBLEMS = (
    (413, "Payload Too Large", "The request body exceeds the edge limit."),
    (429, "Too Many Requests", "Rate limit exceeded for this client; retry later."),
    (502, "Bad Gateway", "The API is not answering."),
    (503, "Service Unavailable", "The API is not available."),
    (504, "Gateway Timeout", "The API did not answer in time."),
)

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


def _problem_locations() -> str:
    out = []
    for status, title, detail in PROBLEMS:
        body = json.dumps(
            {"type": "about:blank", "title": title, "status": status, "detail": detail},
            separators=(",", ":"),
        )
        # 502 and 504 too: the API is restarting or busy (a careful client backs off
        # for a second instead of hammering; seen in the chaos run's helper kill).
        extra = (("Retry-After", "1"),) if status in (429, 502, 503, 504) else ()
        out.append(
            f"    location @problem_{status} {{\n"
            f"        default_type application/problem+json;\n"
            f"{_headers((('Cache-Control', 'no-store'), *extra))}"
            f"        return {status} {_q(body)};\n"
            f"    }}\n"
        )
    return "".join(out)


def _log_format() -> str:
    parts = [f'"{name}":"{var}"' for name, var in LOG_FIELDS]
    return "{" + ",".join(parts) + "}"


def render(cfg: EdgeConfig | int, upstreams: Sequence[str] | None = None, **options: object) -> str:
    """The complete nginx.conf text (paths absolute), for an EdgeConfig or for
    `render(listen_port, upstreams, cache_dir=..., log_dir=..., ...)`."""
    if not isinstance(cfg, EdgeConfig):
        cfg = EdgeConfig(listen_port=cfg, upstreams=list(upstreams or ()), **options)  # type: ignore[arg-type]
    if not cfg.upstreams:
        raise ValueError("at least one upstream is needed")
    prefix = cfg.prefix.resolve()
    tmp = (cfg.temp_dir or prefix / "tmp").resolve()
    logs = cfg.logs.resolve()
    access_log = cfg.access_log_path or str(logs / "access.log")
    error_log = cfg.error_log_path or str(logs / "error.log")
    resolve = " resolve" if cfg.resolve_upstreams else ""
    servers = "".join(
        f"        server {u} max_fails={cfg.max_fails} fail_timeout=2s{resolve};\n"
        for u in cfg.upstreams
    )
    # `resolve` keeps the resolved addresses in shared memory: it needs a zone.
    zone = "        zone api 1m;\n" if cfg.resolve_upstreams else ""
    keepalive_time = (
        f"        keepalive_time {cfg.upstream_keepalive_time};\n"
        if cfg.upstream_keepalive_time
        else ""
    )
    resolver = (
        f"    resolver {cfg.resolver} valid=5s ipv6=off;\n    resolver_timeout 2s;\n"
        if cfg.resolver
        else ""
    )
    public = [*PUBLIC_PREFIXES, *cfg.extra_public_prefixes]
    proxy = "        proxy_pass http://api;\n"
    limit_conn = f"        limit_conn perip {cfg.conn_limit};\n" if cfg.per_ip_limits else ""
    limit_req = (
        f"        limit_req zone=public burst={cfg.burst} nodelay;\n" if cfg.per_ip_limits else ""
    )
    matches = [*(f"^~ {p}" for p in public), *PAGE_LOCATIONS]
    public_locations = "".join(
        f"    location {m} {{\n"
        f"{limit_req}"
        f"{limit_conn}"
        f"        proxy_cache micro;\n"
        f"        proxy_cache_key $scheme$host$request_uri;\n"
        # A page that is gone (deleted, unpublished, suspended) is cached like a
        # page (the API marks that 404 public for a second): the background refresh
        # stores the 404 and the stale 200 stops being served. With only 200
        # cacheable, each refresh's 404 was dropped and the stale 200 went on being
        # served as long as requests kept coming.
        f"        proxy_cache_valid 200 {GONE_STATUSES} {cfg.cache_valid};\n"
        f"        proxy_cache_lock on;\n"
        f"        proxy_cache_lock_timeout 5s;\n"
        # Stale while the API is down, for as long as it is down. Stale while a
        # refresh runs only within the response's own `stale-while-revalidate` (1 s,
        # api/cache.py): with `updating` here, the first visitor after a quiet spell
        # got a page of any age, deleted or unpublished since.
        f"        proxy_cache_use_stale error timeout"
        f" http_500 http_502 http_503 http_504;\n"
        f"        proxy_cache_background_update on;\n"
        f"        proxy_cache_bypass $http_authorization;\n"
        f"        proxy_no_cache $http_authorization;\n"
        f"{_headers()}"
        f"{proxy}"
        f"    }}\n"
        for m in matches
    )
    user = f"user {cfg.user};\n" if cfg.user else ""
    static = str(cfg.static_dir.resolve()).rstrip("/") + "/"
    return f"""# Rendered by edge/render.py; do not edit (re-render instead).
{user}worker_processes {cfg.worker_processes};
daemon {"on" if cfg.daemon else "off"};
pid {prefix / "nginx.pid"};
error_log {error_log} warn;

events {{
    worker_connections {cfg.worker_connections};
}}

http {{
    server_tokens off;
    types {{
        text/html html htm;
        text/css css;
        application/javascript js mjs;
        application/json json;
        image/svg+xml svg;
        image/png png;
        image/x-icon ico;
        text/plain txt;
    }}
    default_type application/octet-stream;
    charset_types text/css application/javascript application/json;

    client_body_temp_path {tmp / "client_body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};

    # API answers (and microcache hits) without sendfile: nginx reads the small
    # cached body and writes headers and body in one writev. With sendfile it needs
    # TCP_CORK (tcp_nopush) to send them in one segment, and nginx ends a request
    # that served STALE only when its background refresh ends: until then the corked
    # stale body sat in the kernel (up to its 200 ms cork limit; 52-205 ms measured
    # in the 1000-user run, 1-10 ms without). Without the cork, sendfile sent headers
    # and body apart: hits fell from 0.89 to 0.74 of the static ceiling. Static
    # files (large, never STALE) keep sendfile and the cork.
    sendfile off;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    client_max_body_size {cfg.client_max_body_size};
    client_body_timeout 10s;
    client_header_timeout 10s;
    send_timeout 30s;

    # The client's X-Request-ID when it looks sane, else one generated here.
    map $http_x_request_id $edge_request_id {{
        default $request_id;
        "~^[A-Za-z0-9._:-]{{1,128}}$" $http_x_request_id;
    }}
    # X-Cache-Status on every response: BYPASS where the microcache is not used.
    map $upstream_cache_status $edge_cache_status {{
        default $upstream_cache_status;
        "" BYPASS;
    }}

    log_format edge_json escape=json '{_log_format()}';
    # Buffered: one write per 64 KiB or per second, not one per request.
    access_log {access_log} edge_json buffer=64k flush=1s;

    proxy_cache_path {cfg.cache_path.resolve()} levels=1:2 keys_zone=micro:10m
                     max_size={cfg.cache_max_size} inactive=10m use_temp_path=off;

    limit_req_zone $binary_remote_addr zone=public:10m rate={cfg.rate};
    limit_req_zone $binary_remote_addr zone=token:10m rate={cfg.token_rate};
    limit_conn_zone $binary_remote_addr zone=perip:10m;
    limit_req_status 429;
    limit_conn_status 429;
    limit_req_log_level warn;
    limit_conn_log_level warn;

    gzip on;
    gzip_comp_level 5;
    gzip_min_length 512;
    gzip_vary on;
    gzip_proxied any;
    # text/html is always compressed when gzip is on (listing it is a warning).
    gzip_types application/json application/problem+json text/css application/javascript
               text/plain image/svg+xml;

{resolver}    upstream api {{
{zone}{servers}        keepalive {cfg.keepalive};
        keepalive_timeout {cfg.upstream_keepalive_timeout};
{keepalive_time}    }}

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Request-ID $edge_request_id;
    # The cache stores identity bodies; gzip happens here, per client.
    proxy_set_header Accept-Encoding "";
    proxy_hide_header X-Request-ID;
    proxy_connect_timeout {cfg.connect_timeout};
    proxy_send_timeout {cfg.send_timeout};
    proxy_read_timeout {cfg.read_timeout};
    # Only idempotent requests move to the next worker: nginx's default never
    # re-sends a POST that already reached one (the flag that would is not set).
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries {cfg.next_upstream_tries};
    proxy_next_upstream_timeout {cfg.next_upstream_timeout};

    server {{
        listen {cfg.listen_host}:{cfg.listen_port} reuseport backlog=4096;
        server_name _;

        error_page 413 @problem_413;
        error_page 429 @problem_429;
        error_page 502 @problem_502;
        error_page 503 @problem_503;
        error_page 504 @problem_504;

{_headers()}
{public_locations}
    location ^~ /api/token {{
        limit_req zone=token burst={cfg.token_burst} nodelay;
{limit_conn}{_headers()}{proxy}    }}

    # Every spelling of /metrics (a trailing slash, doubled slashes, /metrics/x, any
    # case): prefix locations match the literal URI, and the app answers /metrics/
    # too unless told otherwise, so an exact match alone left /metrics/ public.
    location ~* "^/+metrics(?:[/?.;]|$)" {{
        allow 127.0.0.1;
        deny all;
{_headers()}{proxy}    }}

    location ^~ /static/ {{
        alias {static};
        sendfile on;
        tcp_nopush on;
        etag on;
{_headers((("Cache-Control", "public, max-age=2592000, immutable"),))}    }}

    location / {{
{limit_conn}{_headers()}{proxy}    }}

{_problem_locations()}    }}
}}
"""


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
