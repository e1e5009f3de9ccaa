"""load/cpu.py: CPU time of a server's processes, children included, by part."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from load.cpu import CpuMeter, CpuUse, beside_roots, part_of
from load.report import _cpu_headline

# Listens (so it can be found by port), then burns CPU in a child process for
# `seconds`, then in itself for as long: both must be counted.
SERVER = """
import multiprocessing, socket, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
if __name__ == "__main__":
    s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
    sys.stdin.readline()
    child = multiprocessing.Process(target=burn, args=(float(sys.argv[2]),))
    child.start()
    burn(float(sys.argv[2]))
    print("done", flush=True)
    sys.stdin.readline()
    child.join()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_meter_counts_a_server_and_its_children() -> None:
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), "0.4"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        use = _measure(proc, port)
    # 0.4 s in the server and 0.4 s in its child (alive or reaped), as "api".
    assert 0.7 <= use.seconds["api"] <= 2.0, use
    assert use.seconds["postgres"] == use.seconds["nginx"] == 0.0


def _measure(proc: subprocess.Popen[str], port: int) -> CpuUse:
    try:
        deadline = time.monotonic() + 10
        while not any(c.laddr.port == port for c in psutil.net_connections("tcp") if c.laddr):
            assert time.monotonic() < deadline, "server did not listen"
            time.sleep(0.05)
        meter = CpuMeter.for_ports([port])
        assert [r.pid for r in meter.roots] == [proc.pid]
        meter.start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        time.sleep(0.5)  # the child finishes its 0.4 s too
        use = meter.stop()
    finally:
        proc.kill()
        proc.wait()
    return use


def test_per_request_figures() -> None:
    use = CpuUse(seconds={"api": 0.5, "postgres": 0.25, "redis": 0.0, "nginx": 0.25})
    per = use.per_request_ms(1000)
    assert per == {"api": 0.5, "postgres": 0.25, "redis": 0.0, "nginx": 0.25, "total": 1.0}
    assert use.per_request_ms(0) == {}


def test_parts_by_process_name() -> None:
    assert part_of("postgres") == "postgres"
    assert part_of("redis-server") == "redis"
    assert part_of("nginx") == "nginx"
    assert part_of("python3.11") == "api"


# Burns `seconds` of CPU after a line on stdin; its command line names the job worker
# (`-m admin worker` as trailing arguments), as ./start.sh's does.
BURNER = """
import sys, time
sys.stdin.readline()
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
print("done", flush=True)
sys.stdin.readline()
"""


def test_beside_meter_counts_this_checkouts_worker_apart(tmp_path: Path) -> None:
    """The job worker of the stack started from a checkout is found by its command
    line and folder, and counted as `worker`, never as a part of the server."""
    argv = [sys.executable, "-c", BURNER, "0.3", "-m", "admin", "worker"]
    with subprocess.Popen(
        argv, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            found = beside_roots(tmp_path)
            assert [p.pid for p in found.values()] == [proc.pid] and "worker" in found
            assert beside_roots(tmp_path / "elsewhere") == {}  # another checkout's: not ours
            meter = CpuMeter.beside(tmp_path)
            meter.start()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
            use = meter.stop()
        finally:
            proc.kill()
            proc.wait()
    assert set(use.seconds) == {"worker"} and 0.25 <= use.seconds["worker"] <= 1.5, use
    assert CpuMeter.beside(tmp_path).stop().seconds == {}  # gone: nothing to count


def test_the_headline_gives_the_worker_beside_the_servers_figure() -> None:
    cpu = {
        "per_request_ms": {"api": 0.5, "postgres": 0.3, "redis": 0.0, "nginx": 0.2, "total": 1.0},
        "k6_per_request_ms": 0.5,
        "beside_per_request_ms": {"worker": 0.12, "mail": 0.04, "total": 0.16},
    }
    lines = _cpu_headline(cpu)
    assert lines[0].startswith("- server CPU per request: 1.00 core-ms (api 0.50, ")
    assert lines[0].endswith("; the load generator (k6) 0.50 (server ÷ k6 2.00)")
    assert "÷" not in _cpu_headline({**cpu, "k6_per_request_ms": 0.0})[0]  # no k6 time read
    assert lines[1] == (
        "- beside the server, not in its figure: the job worker 0.12, the SMTP sink 0.04 core-ms"
    )
    assert len(_cpu_headline({**cpu, "beside_per_request_ms": {}})) == 1
