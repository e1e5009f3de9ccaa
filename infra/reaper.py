"""A supervisord event listener: when a program's process exits, signal what is left
of its process group.

supervisord starts each program in a process group of its own and kills that group
only when it stops the program itself. When the API's main process dies on its own
(SIGKILL, OOM), its workers and the multiprocessing Manager (the helper) are left
behind in that group: the workers drain and end by themselves (PR_SET_PDEATHSIG,
api/supervision.py), the helper never did. SIGTERM to the group ends them all.

Run by supervisord as `[eventlistener:reaper]` (infra/supervisor.py); speaks its
event protocol on stdin/stdout (supervisor.childutils).
"""

from __future__ import annotations

import os
import signal
import sys


def reap(payload: str) -> int | None:
    """The process group signalled for one PROCESS_STATE_EXITED payload, if any."""
    fields = dict(part.split(":", 1) for part in payload.split() if ":" in part)
    try:
        pgid = int(fields["pid"])
    except (KeyError, ValueError):
        return None
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return None  # nothing left of the group
    print(
        f"reaper: SIGTERM to what was left of {fields.get('processname')}'s group {pgid}",
        file=sys.stderr,
        flush=True,
    )
    return pgid


def main() -> None:
    from supervisor import childutils  # type: ignore[import-untyped]

    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        if headers.get("eventname") == "PROCESS_STATE_EXITED":
            reap(payload)
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
