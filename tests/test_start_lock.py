"""Two `./start.sh up` on one machine take turns choosing ports and starting
(infra/stack.starting_lock): the second waits until the first has its servers."""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path

from infra.stack import starting_lock
from tests.services import ROOT

TAKE_LOCK = """
import sys
from pathlib import Path
from infra.stack import starting_lock
with starting_lock(Path(sys.argv[1])):
    print("got it", flush=True)
"""


def _second(lock: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", TAKE_LOCK, str(lock)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _first_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from the second start"
    return proc.stdout.readline().rstrip("\n")


def test_a_second_start_waits_for_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "start.lock"
    with starting_lock(lock):
        second = _second(lock)
        line = _first_line(second)
        assert line == "== waiting for another ./start.sh on this machine to finish starting"
        assert second.poll() is None, "the second start went on while the first held the lock"
    out, _ = second.communicate(timeout=30)
    assert out.splitlines() == ["got it"]


def test_an_uncontended_start_does_not_wait(tmp_path: Path) -> None:
    second = _second(tmp_path / "start.lock")
    out, _ = second.communicate(timeout=30)
    assert out.splitlines() == ["got it"]


def test_a_lock_file_that_cannot_be_written_still_locks(tmp_path: Path) -> None:
    lock = tmp_path / "start.lock"
    lock.touch()
    lock.chmod(0o444)  # as another user's file in /tmp looks to this one
    with starting_lock(lock):
        second = _second(lock)
        assert _first_line(second).startswith("== waiting for another ./start.sh")
    assert second.communicate(timeout=30)[0].splitlines() == ["got it"]
