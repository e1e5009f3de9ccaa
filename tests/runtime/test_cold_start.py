"""Cold start: the measurement runs, and a worker does no database or Redis work
before it is asked to serve (importing and building the app needs neither)."""

from __future__ import annotations

import json
import subprocess
import sys

from load.coldstart import measure_cold_start
from tests.services import ROOT, Database, api_env


def test_measure_cold_start_returns_positive_seconds(db: Database) -> None:
    times = measure_cold_start(api_env(db), runs=1)
    assert len(times) == 1
    assert 0 < times[0] < 60


# Settings for a fresh interpreter; nothing listens on port 1.
SETTINGS = (
    "import os\n"
    "os.environ['CONECTADES_DATABASE_URL'] = 'postgresql://x:y@127.0.0.1:1/x'\n"
    "os.environ['CONECTADES_JWT_SECRET'] = 'x' * 40\n"
    "from db.crypto import throwaway_keys\n"
    "os.environ.update(throwaway_keys())\n"
)


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a new interpreter with SETTINGS and a bare environment."""
    return subprocess.run(
        [sys.executable, "-c", SETTINGS + code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_and_building_the_app_needs_no_services() -> None:
    # Nothing listens on port 1: any connect at import or construction would fail.
    code = (
        "os.environ['CONECTADES_REDIS_URL'] = 'redis://127.0.0.1:1/0'\n"
        "import api.server\n"
        "app = api.server.create_app()\n"
        "assert app.ctx.pool is None and app.ctx.cache is None\n"
    )
    run = run_fresh(code)
    assert run.returncode == 0, run.stderr[-2000:]


def test_start_finalizes_the_signal_router_a_bounded_number_of_times() -> None:
    # sanic-ext adds HEAD/OPTIONS routes after Sanic finalized its routers; unbatched,
    # every add recompiled the signal router (~50 times, ~1 s of each start).
    code = (
        "import json\n"
        "from sanic import Sanic\n"
        "from infra.postgres import free_port\n"
        "import api.server\n"
        "app = api.server.create_app()\n"
        "count = []\n"
        "original = app.signal_router.finalize\n"
        "def counting(*args, **kwargs):\n"
        "    count.append(1)\n"
        "    return original(*args, **kwargs)\n"
        "app.signal_router.finalize = counting\n"
        "methods = {}\n"
        "async def stop(app):\n"
        "    for route in app.router.routes:\n"
        "        methods.setdefault(route.path, set()).update(route.methods)\n"
        "    app.stop()\n"
        "app.register_listener(stop, 'after_server_start')\n"
        "app.prepare(host='127.0.0.1', port=free_port(), single_process=True, motd=False)\n"
        "Sanic.serve_single()\n"
        "print(json.dumps({'finalized': len(count),\n"
        "                  'public': sorted(methods['api/public/campaigns'])}))\n"
    )
    run = run_fresh(code)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["finalized"] <= 3
    # The auto routes are still there.
    assert result["public"] == ["GET", "HEAD", "OPTIONS"]
