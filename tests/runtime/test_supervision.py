"""Worker supervision inside one API instance (`sanic --workers 2`), with real
signals: a killed worker is replaced within 2 s and logged with its exit status; a
worker whose event loop is stopped makes /health 503; the loss of the manager's
helper process makes the main process exit non-zero at once (for the supervisor
above it); a SIGTERM'd instance replaces nobody on its way out."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.services import ApiServer, Database, api_env


@pytest.fixture
def instance(db: Database, workdir: Path, request: pytest.FixtureRequest) -> Iterator[ApiServer]:
    log = workdir / f"api-supervision-{request.node.name}.log"
    env = api_env(
        db,
        CONECTADES_LIVENESS_BLOCKED="2",
        # A stop takes at most the drain, the graceful shutdown and Sanic's own wait
        # for its workers' states (up to 10 s): short here, so a test bounds it.
        CONECTADES_DRAIN_TIMEOUT="2",
        CONECTADES_GRACEFUL_SHUTDOWN_TIMEOUT="3",
    )
    server = ApiServer(env, workers=2, log=log)
    server.start()
    yield server
    server.stop()


def spawned(server: ApiServer) -> list[psutil.Process]:
    """The main process's live multiprocessing children, oldest first: the Manager
    (the helper), then the server workers."""
    assert server.proc is not None
    found = []
    for child in psutil.Process(server.proc.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # gone meanwhile
            continue
    return sorted(found, key=lambda p: p.create_time())


def workers(server: ApiServer) -> list[psutil.Process]:
    return spawned(server)[1:]


def helper(server: ApiServer) -> psutil.Process:
    return spawned(server)[0]


def health(server: ApiServer) -> httpx.Response:
    return httpx.get(server.url + "/health", timeout=5)


def wait_for(predicate, timeout: float, step: float = 0.05) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s")


def test_health_reports_the_configured_workers(instance: ApiServer) -> None:
    r = health(instance)
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "workers": {"configured": 2, "alive": 2, "restarts": 0, "blocked": []},
    }


def test_killed_worker_is_replaced_within_two_seconds_under_load(instance: ApiServer) -> None:
    before = workers(instance)
    assert len(before) == 2
    victim = before[0]
    stop = threading.Event()
    answers: list[int] = []

    def load() -> None:
        with httpx.Client(base_url=instance.url, timeout=5) as c:
            while not stop.is_set():
                try:
                    answers.append(c.get("/health/ready").status_code)
                except httpx.HTTPError:
                    answers.append(0)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    victim.kill()
    took = wait_for(
        lambda: (
            len([w for w in workers(instance) if w.is_running()]) == 2
            and victim.pid not in {w.pid for w in workers(instance)}
        ),
        timeout=2,
    )
    wait_for(lambda: health(instance).status_code == 200, timeout=2)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert took < 2
    body = health(instance).json()
    assert body["workers"]["alive"] == 2 and body["workers"]["restarts"] == 1
    assert instance.log_path is not None
    log = instance.log_path.read_text()
    assert f"(pid {victim.pid}) ended (killed by SIGKILL); starting a new one" in log
    # The survivor and then the new worker answered; failures only for requests
    # that were on the killed worker's connections.
    assert answers.count(200) > 50
    assert answers[-20:] == [200] * 20


def test_blocked_event_loop_makes_liveness_fail_until_it_runs_again(
    instance: ApiServer,
) -> None:
    victim = workers(instance)[1]
    # Readiness is one worker's answer: wait until the victim serves (and beats).
    assert instance.log_path is not None
    wait_for(lambda: f"Worker ready [{victim.pid}]" in instance.log_path.read_text(), timeout=10)
    victim.suspend()  # its loop stops turning; the other worker answers /health
    try:
        wait_for(lambda: health(instance).status_code == 503, timeout=5, step=0.2)
        body = health(instance).json()
        assert body["status"] == "degraded" and body["workers"]["blocked"] == [1]
        assert body["workers"]["alive"] == 2  # alive, not dead: nothing to replace
    finally:
        victim.resume()
    wait_for(lambda: health(instance).status_code == 200, timeout=3)


def test_helper_loss_makes_the_main_process_exit_nonzero_at_once(instance: ApiServer) -> None:
    assert instance.proc is not None
    main_pid = instance.proc.pid
    helper(instance).kill()
    started = time.monotonic()
    code = instance.proc.wait(10)
    assert time.monotonic() - started < 3
    assert code != 0
    # ...and took its workers with it: nothing left listening on the port.
    wait_for(lambda: not psutil.pid_exists(main_pid) or _zombie(main_pid), timeout=5)
    wait_for(lambda: _port_closed(instance.port), timeout=5)


def test_sigterm_to_the_instance_replaces_nobody(instance: ApiServer) -> None:
    assert instance.proc is not None
    # To the main process only, as Kubernetes and supervisord send it (a signal to
    # the whole group also reaches the manager's helper, and losing the helper is
    # the non-zero exit above).
    os.kill(instance.proc.pid, signal.SIGTERM)
    assert instance.log_path is not None
    try:
        # 2 s drain + 3 s graceful + up to 10 s of Sanic's state wait, and slack
        # for a busy machine (a clean-clone run took over 20 s once).
        code = instance.proc.wait(40)
    except subprocess.TimeoutExpired:
        raise AssertionError(instance.log_path.read_text()[-3000:]) from None
    assert code == 0
    assert "starting a new one" not in instance.log_path.read_text()


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _port_closed(port: int) -> bool:
    out = subprocess.run(["ss", "-ltn", f"sport = :{port}"], capture_output=True, text=True)
    return str(port) not in out.stdout
