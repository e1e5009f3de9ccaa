"""The README's quick start, end to end: the stack (what `./start.sh` runs after
installing) prints a working key; with it a campaign with two items is created,
donations recorded, one confirmed, exact progress read back; `stop` stops every
process it started."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.nginx import MEMORY_FS, memory_room, size_bytes
from infra.supervisor import Supervisor
from tests.services import run_stack


def stack(var: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_stack(*args, var=var)


def alive(pid: int, grace: float = 5.0) -> bool:
    """Whether `pid` still runs after `grace` seconds (a process may take a moment
    to exit after removing its pid file)."""
    deadline = time.monotonic() + grace
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def started(workdir: Path) -> Iterator[tuple[Path, str]]:
    var = workdir / "stack"
    up = stack(var, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield var, up.stdout
    finally:
        stack(var, "stop")


def test_start_prints_urls_and_credentials(started: tuple[Path, str]) -> None:
    _, out = started
    assert re.search(r"API key\s+cnd_live_\S+", out)
    assert re.search(r"Staff login\s+admin / \S+", out)
    assert "/api/docs/" in out


def test_start_warms_the_public_reads(started: tuple[Path, str]) -> None:
    """The demo's public reads are in Redis before the first visitor (before any other
    test here writes): the first request for them is a Redis hit."""
    _, out = started
    warmed = re.search(r"warmed (\d+) of (\d+) public reads", out)
    assert warmed is not None and warmed[1] == warmed[2] and int(warmed[1]) > 0, out
    api = re.search(r"API \(direct\)\s+(http://\S+)", out)[1]  # type: ignore[index]
    with httpx.Client(base_url=api, timeout=30) as c:
        paths = ("/api/public/campaigns?order=progress", "/api/public/demo/campaigns", "/o/demo")
        for path in paths:
            r = c.get(path)
            assert r.status_code == 200, r.text
            assert r.headers["x-cache"] == "HIT", path


def test_quick_start_flow_reads_exact_progress(started: tuple[Path, str]) -> None:
    _, out = started
    key = re.search(r"API key\s+(cnd_live_\S+)", out)[1]  # type: ignore[index]
    # Through the edge, as the printed URLs say (partner requests are never cached).
    api = re.search(r"Edge \(use this\)\s+(http://\S+)", out)[1]  # type: ignore[index]
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api, headers=auth, timeout=30) as c:
        r = c.post(
            "/api/v1/campaigns",
            json={
                "slug": "quickstart",
                "title": "Campanha do agasalho",
                "status": "published",
                "items": [
                    {"name": "Cobertor", "unit": "unit", "quantity_requested": 30},
                    {"name": "Arroz", "unit": "kg", "quantity_requested": 50},
                ],
            },
        )
        assert r.status_code == 201, r.text
        campaign = r.json()
        blanket, rice = campaign["items"]
        path = f"/api/v1/campaigns/{campaign['id']}/donations"
        d1 = c.post(path, json={"item_id": rice["id"], "quantity": 10, "donor_name": "Ana"})
        d2 = c.post(path, json={"item_id": rice["id"], "quantity": 5, "donor_name": "Bia"})
        d3 = c.post(path, json={"item_id": blanket["id"], "quantity": 3})
        assert {d1.status_code, d2.status_code, d3.status_code} == {201}
        assert c.post(f"/api/v1/donations/{d1.json()['id']}/confirm").status_code == 200
        got = c.get(f"/api/v1/campaigns/{campaign['id']}").json()
    items = {i["name"]: i for i in got["items"]}
    assert items["Arroz"]["contributed_quantity"] == 10
    assert items["Arroz"]["pending_quantity"] == 5
    assert items["Cobertor"]["contributed_quantity"] == 0
    assert items["Cobertor"]["pending_quantity"] == 3
    assert items["Arroz"]["progress"] == pytest.approx(10 / 50)


README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_quick_start_runs_as_written(started: tuple[Path, str]) -> None:
    """The README's shell block, run by bash with the printed key and edge: every id it
    captures with jq is real, the pledge has what a pledge needs, and the progress it
    prints is the donations'."""
    _, out = started
    key = re.search(r"API key\s+(cnd_live_\S+)", out)[1]  # type: ignore[index]
    api = re.search(r"Edge \(use this\)\s+(http://\S+)", out)[1]  # type: ignore[index]
    text = README.read_text(encoding="utf-8")
    start = text.index("KEY=cnd_live_...")
    block = text[start : text.index("```", start)]
    block = block.replace("KEY=cnd_live_...", f"KEY={key}", 1)
    block = re.sub(r"^API=\S+", f"API={api}", block, count=1, flags=re.M)
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "confirmed", run.stdout
    assert '"status":"pending"' in lines[1] and '"quantity":2' in lines[1], run.stdout
    shown = run.stdout[run.stdout.index("{", len(lines[0]) + len(lines[1])) :]
    assert '"contributed_quantity": 10' in shown and '"pending_quantity": 2' in shown


def test_pledges_email_lands_in_var_mail(started: tuple[Path, str]) -> None:
    """The stack's SMTP sink and worker: a pledge's notice and its confirm link, as
    `./start.sh` says, in var/mail/ (issue 17, part 5)."""
    var, out = started
    assert re.search(rf"Sent email\s+{re.escape(str(var / 'mail'))}/", out), out
    key = re.search(r"API key\s+(cnd_live_\S+)", out)[1]  # type: ignore[index]
    edge = re.search(r"Edge \(use this\)\s+(http://\S+)", out)[1]  # type: ignore[index]
    with httpx.Client(base_url=edge, timeout=30) as c:
        r = c.post(
            "/api/v1/campaigns",
            headers={"Authorization": f"Bearer {key}"},
            json={"slug": "quickstart-mail", "title": "Campanha do cobertor",
                  "status": "published", "contact": "ong@example.org",
                  "items": [{"name": "Cobertor", "unit": "unit", "quantity_requested": 9}]},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        item = r.json()["items"][0]["id"]
        r = c.post(
            "/api/public/demo/campaigns/quickstart-mail/donations",
            headers={"Idempotency-Key": "quickstart-mail-1"},
            json={"item_id": item, "quantity": 2, "donor_name": "Rita",
                  "donor_contact": "rita@example.org"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    deadline = time.monotonic() + 60
    sent: list[Any] = []
    while time.monotonic() < deadline and len(sent) < 2:
        time.sleep(0.5)
        files = sorted((var / "mail").glob("*.eml"))
        sent = [message_from_bytes(f.read_bytes(), policy=default) for f in files]
    assert sorted(str(m["To"]) for m in sent) == [
        "ONG Demonstração <ong@example.org>",
        "Rita <rita@example.org>",
    ]
    notice = next(m for m in sent if "ong@" in str(m["To"]))
    text = notice.get_body(preferencelist=("plain",))
    assert text is not None and f"{edge}/confirmar/" in text.get_content()


def test_start_again_is_harmless_and_status_reports(started: tuple[Path, str]) -> None:
    var, out = started
    cache = (var / "edge" / "cache").resolve()  # in memory (infra/nginx.py) or on disk
    again = stack(var, "up")
    assert again.returncode == 0, again.stderr
    key = re.search(r"API key\s+(cnd_live_\S+)", out)[1]  # type: ignore[index]
    assert key in again.stdout  # same credentials, nothing recreated
    status = stack(var, "status")
    assert status.returncode == 0, status.stdout
    assert "ready" in status.stdout
    assert re.search(r"^redis\s+running on 127\.0\.0\.1:\d+", status.stdout, re.M)
    # The edge (stopped and started again by its supervisor) kept its cache folder.
    assert re.search(r"^edge\s+running on", status.stdout, re.M), status.stdout
    assert (var / "edge" / "cache").resolve() == cache and cache.is_dir()


def test_start_again_in_a_shell_that_ran_start_env_keeps_the_mail_sink(
    started: tuple[Path, str],
) -> None:
    """The README's `eval "$(./start.sh env)"` exports the local sink's host and
    port as CONECTADES_SMTP_*; a `./start.sh` run later in that shell took them for
    an external server, started no sink, and every email failed to connect."""
    var, _ = started
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in stack(var, "env").stdout.splitlines()
    )
    assert exported["CONECTADES_SMTP_HOST"] == "127.0.0.1"
    assert stack(var, "stop").returncode == 0
    up = run_stack("up", var=var, extra_env=exported)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "(CONECTADES_SMTP_HOST)" not in up.stdout  # not "via 127.0.0.1 (...)"
    status = stack(var, "status").stdout
    assert re.search(r"^mail\s+SMTP sink on 127\.0\.0\.1:\d+", status, re.M), status
    assert port_open(int(exported["CONECTADES_SMTP_PORT"]))


def supervised(var: Path) -> Supervisor:
    """The stack's supervisord (only its socket and pid file are needed to ask it)."""
    return Supervisor(var / "supervisor", [])


def test_stop_stops_every_process(workdir: Path) -> None:
    var = workdir / "stack-stop"
    assert stack(var, "up").returncode == 0
    sup = supervised(var)
    sup_pid = int((var / "supervisor" / "supervisord.pid").read_text())
    api_pid = sup.pid("api")
    assert api_pid is not None
    pg_pid = int((var / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    redis_pid = int((var / "redis" / "redis.pid").read_text())
    assert (pg_pid, redis_pid) == (sup.pid("postgres"), sup.pid("redis"))
    env = dict(line.split("=", 1) for line in (var / "stack.env").read_text().splitlines()[1:])
    edge_pid = int((var / "edge" / "nginx.pid").read_text())
    assert edge_pid == sup.pid("edge")
    ports = [int(env[k]) for k in ("PG_PORT", "API_PORT", "REDIS_PORT", "EDGE_PORT")]
    children = subprocess.run(
        ["pgrep", "-g", str(api_pid)], capture_output=True, text=True
    ).stdout.split()
    assert (
        alive(api_pid, 0)
        and alive(pg_pid, 0)
        and alive(redis_pid, 0)
        and alive(edge_pid, 0)
        and children
    )
    cache = (var / "edge" / "cache").resolve()
    assert cache.is_dir()
    if memory_room(MEMORY_FS) >= 2 * size_bytes("256m"):
        assert cache.is_relative_to(MEMORY_FS), cache
    stopped = stack(var, "stop")
    assert stopped.returncode == 0
    if cache.is_relative_to(MEMORY_FS):  # the microcache in memory goes with the stack
        assert not cache.parent.exists() and not (var / "edge" / "cache").is_symlink()
    assert not alive(sup_pid)
    assert not alive(api_pid)
    assert not alive(pg_pid)
    assert not alive(redis_pid)
    assert not alive(edge_pid)
    assert not any(alive(int(p)) for p in children)
    assert not any(port_open(p) for p in ports)
    assert stack(var, "status").returncode == 3


def public_page_ok(edge: str) -> bool:
    try:
        return httpx.get(f"{edge}/api/public/demo/campaigns", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_background_work_yields_the_cores_to_the_request_path(
    started: tuple[Path, str],
) -> None:
    """The job worker and the SMTP sink run at niceness 10, the API, PostgreSQL,
    Redis and the edge at the default: on shared cores requests run first."""
    var, _ = started
    sup = supervised(var)
    nice = {name: os.getpriority(os.PRIO_PROCESS, sup.pid(name) or 0) for name in sup.info()}
    assert nice == {
        "postgres": 0, "redis": 0, "mail": 10, "api": 0, "worker": 10, "edge": 0, "reaper": 0,
    }, nice  # fmt: skip


@pytest.mark.parametrize("program", ["api", "redis", "edge", "postgres"])
def test_a_killed_service_is_started_again_and_status_says_so(
    started: tuple[Path, str], program: str
) -> None:
    """SIGKILL to each long-running process of the stack: its supervisor starts it
    again, the public directory answers through the edge within 10 s, and
    `./start.sh status` reports the restart."""
    var, out = started
    edge = re.search(r"Edge \(use this\)\s+(http://\S+)", out)[1]  # type: ignore[index]
    sup = supervised(var)
    before = sup.pid(program)
    assert before is not None
    restarts = int(
        re.search(rf"^{program}\s.*?(\d+) restarts", stack(var, "status").stdout, re.M)[1]
    )  # type: ignore[index]
    os.kill(before, 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info = sup.info().get(program, {})
        if (
            info.get("statename") == "RUNNING"
            and info.get("pid") != before
            and public_page_ok(edge)
        ):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{program} not back within 10 s: {sup.info().get(program)}")
    status = stack(var, "status")
    assert status.returncode == 0, status.stdout
    line = re.search(rf"^{program}\s.*$", status.stdout, re.M)[0]  # type: ignore[index]
    # At least one more: a PostgreSQL killed with SIGKILL leaves its backends for a
    # moment, and the first new postmaster may find their shared memory still in use
    # and exit, so the supervisor starts it twice (seen in a clean-clone run).
    now = int(re.search(r"(\d+) restarts", line)[1])  # type: ignore[index]
    assert now >= restarts + 1, status.stdout


def test_a_port_another_process_holds_is_named_not_silently_shared(workdir: Path) -> None:
    """A stack whose var/stack.env names a port some other process now listens on
    (another clone's stack started meanwhile) stops with the setting's name: its
    readiness check would otherwise be answered by the other server."""
    var = workdir / "stack-port-taken"
    var.mkdir()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        (var / "stack.env").write_text(f"PG_PORT={taken}\n")
        try:
            up = stack(var, "up")
            assert up.returncode != 0, up.stdout
            assert f"postgres: port {taken} (PG_PORT in " in up.stderr, up.stderr
            assert "is taken by another process" in up.stderr
            assert "Conectades is up" not in up.stdout
        finally:
            stack(var, "stop")
