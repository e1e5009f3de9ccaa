"""Our own servers (the Sanic app, a bare Sanic route) started as child processes:
the one way the benchmarks, the cold-start measurement and the tests start one, wait
for it, and stop it.

- `clean_env()`: this environment minus every `CONECTADES_*` setting, so a server
  gets only the settings its caller passes (a developer's shell may export some).
- `sanic_argv()`: `python -m sanic TARGET --factory` on 127.0.0.1:PORT.
- `spawn()`: the process in a session of its own (its workers are its group), its
  output appended to a log.
- `wait_http_ok()`: poll a URL until it answers 200; the log's last errors if the
  process exits first.
- `stop_group()`: SIGTERM to the group, SIGKILL if it is still there after `timeout`.

Servers that daemonize themselves (PostgreSQL, Redis, Nginx) are watched by pid
instead: infra/process.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerError(RuntimeError):
    """A server exited before it was ready, or was not ready in time."""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without `CONECTADES_*`, unbuffered, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONECTADES_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def sanic_argv(
    target: str,
    port: int,
    *,
    workers: int | None = 1,
    access_logs: bool = False,
) -> list[str]:
    """`python -m sanic TARGET --factory`; `workers=None` runs it single-process
    (no worker manager: what the cold-start and the single-process benchmarks time)."""
    mode = ["--single-process"] if workers is None else ["--workers", str(workers)]
    logs = [] if access_logs else ["--no-access-logs"]
    return [
        sys.executable, "-m", "sanic", target, "--factory", *mode, *logs,
        "--no-motd", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def spawn(
    argv: list[str], env: dict[str, str], log: Path | None, *, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`argv` in its own session, stdin closed, stdout and stderr appended to `log`."""
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def _last_errors(log: Path | None, count: int = 3) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join([ln for ln in lines if "ERROR" in ln or "Error" in ln][-count:])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers 200 now."""
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback)
        return bool(r.status == 200)
    return False


def wait_http_ok(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    *,
    log: Path | None = None,
    name: str = "server",
    interval: float = 0.1,
) -> float:
    """Poll `url` until it answers 200; the seconds that took. Raises ServerError
    (naming the log and its last errors) if `proc` exits first or time runs out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if http_ok(url):
            return time.perf_counter() - start
        if proc.poll() is not None:
            raise ServerError(
                f"{name} exited with {proc.returncode}; see {log}\n{_last_errors(log)}".rstrip()
            )
        time.sleep(interval)
    raise ServerError(f"{name} not ready after {timeout:g} s at {url}; see {log}")


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM to `proc`'s process group (a Sanic main process and its workers), then
    SIGKILL if any of it still runs after `timeout` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
