"""The local stack's demo (infra/stack.py): a tenant with an API key and a staff
login, created once and kept in `var/credentials.json`, and its demo campaigns and
donations (`conectades seed`), once."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from infra.stack_settings import CREDENTIALS, ROOT, VAR, Settings


def demo(settings: Settings) -> dict[str, str]:
    """The demo tenant, key and staff login: created once, then read back."""
    if CREDENTIALS.exists():
        creds: dict[str, str] = json.loads(CREDENTIALS.read_text())
        return creds
    password = os.environ.get("CONECTADES_DEMO_PASSWORD") or secrets.token_urlsafe(12)
    creds = asyncio.run(_create_demo(settings, password))
    CREDENTIALS.write_text(json.dumps(creds, indent=2))
    CREDENTIALS.chmod(0o600)
    return creds


async def _create_demo(settings: Settings, password: str) -> dict[str, str]:
    import asyncpg

    from tenants import provisioning

    conn = await asyncpg.connect(settings.admin_dsn)
    try:
        async with conn.transaction():
            demo = await provisioning.tenant_with_key(
                conn,
                slug="demo",
                name="ONG Demonstração",
                scopes=["read", "write", "keys"],
                label="demo (start.sh)",
                reuse=True,
            )
            await provisioning.staff_login(
                conn, demo.tenant_id, username="admin", role="owner", password=password, reset=True
            )
    finally:
        await conn.close()
    key = demo.key
    return {"tenant": "demo", "api_key": key, "username": "admin", "password": password}


def seed_demo(settings: Settings) -> None:
    """Demo campaigns and donations for the demo tenant, once."""
    marker = VAR / ".seeded"
    if marker.exists():
        return
    cmd = [str(Path(sys.executable).parent / "conectades"), "seed", "--tenant", "demo"]
    run = subprocess.run(cmd, cwd=ROOT, env=settings.process_env())
    if run.returncode == 0:
        marker.touch()
    else:
        print("  (demo seeding failed; the stack runs without demo campaigns)")


def warm_cache(settings: Settings) -> None:
    """The public reads in Redis before the first visitor: after a start, Redis may
    be empty, and a crowd's first second would be spent building them. Best effort:
    the stack works without it."""
    for line in run_cache_warm(settings.api_url, settings.process_env()):
        print(f"  {line}")


def run_cache_warm(api_url: str, env: dict[str, str] | None = None) -> list[str]:
    """`conectades cache warm --api api_url`: its summary line, and its error when
    it failed."""
    cmd = [str(Path(sys.executable).parent / "conectades"), "cache", "warm", "--api", api_url]
    run = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True)
    lines = run.stdout.strip().splitlines()[-1:]
    if run.returncode != 0:
        lines += run.stderr.strip().splitlines()[-1:] or [f"exit status {run.returncode}"]
    return lines
