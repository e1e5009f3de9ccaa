"""The job worker's `lower_priority`, in child processes (this one keeps its niceness)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.services import ROOT

PROGRAM = """
import os, sys
from worker.main import lower_priority
print(lower_priority(int(sys.argv[1])), os.getpriority(os.PRIO_PROCESS, 0))
"""


def run(nice: int, *, started_at: int = 0) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", PROGRAM, str(nice)]
    if started_at:
        command = ["nice", "-n", str(started_at), *command]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_a_process_lowers_its_own_priority() -> None:
    assert run(10).stdout.split() == ["10", "10"]


def test_a_process_started_lower_stays_there() -> None:
    assert run(5, started_at=15).stdout.split() == ["15", "15"]


@pytest.mark.parametrize("nice", [-1, 20])
def test_out_of_range_is_refused(nice: int) -> None:
    done = run(nice)
    assert done.returncode != 0 and f"niceness must be 0-19, not {nice}" in done.stderr
