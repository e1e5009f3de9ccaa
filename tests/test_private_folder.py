"""The stack from a project that lives in a private folder, as a clone in a home folder
does (`mktemp -d` is mode 0700, like /root): every part still serves, public pages
through the edge included. As root, the edge's workers (user `nobody`) and
PostgreSQL (user `postgres`) cannot enter such a folder; before this was handled,
every cached public GET through the edge answered 500."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import ROOT, run_stack


def project_files() -> list[str]:
    """What a clone of the working tree holds: tracked and new, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def remove_outside_holders(project: Path) -> None:
    """What the stack put under /var/tmp for the servers' users (linked from var/)."""
    for link in (project / "var").rglob("*"):
        if link.is_symlink():
            holder = link.resolve().parent
            if holder.name.startswith("conectades-") and holder.parent == Path("/var/tmp"):
                shutil.rmtree(holder, ignore_errors=True)


@pytest.fixture(scope="module")
def private_stack() -> Iterator[tuple[Path, str]]:
    home = Path(tempfile.mkdtemp(prefix="conectades-home-"))
    assert home.stat().st_mode & 0o777 == 0o700
    project = home / "conectades"
    for name in project_files():
        target = project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    try:
        up = run_stack("up", project=project)
        assert up.returncode == 0, up.stdout + up.stderr
        yield project, up.stdout
    finally:
        run_stack("stop", project=project)
        remove_outside_holders(project)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the folder is only private to other users")
def test_public_pages_through_the_edge_from_a_private_folder(
    private_stack: tuple[Path, str],
) -> None:
    _, out = private_stack
    key = re.search(r"API key\s+(cnd_live_\S+)", out)[1]  # type: ignore[index]
    edge = re.search(r"Edge \(use this\)\s+(http://\S+)", out)[1]  # type: ignore[index]
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=edge, headers=auth, timeout=30) as partner:
        r = partner.post(
            "/api/v1/campaigns",
            json={
                "slug": "casa-privada",
                "title": "Campanha do agasalho",
                "status": "published",
                "items": [{"name": "Cobertor", "unit": "unit", "quantity_requested": 30}],
            },
        )
        assert r.status_code == 201, r.text
    tenant = "demo"  # the tenant start.sh creates
    visitor = httpx.HTTPTransport(local_address="127.0.0.77")
    with httpx.Client(base_url=edge, transport=visitor, timeout=30) as c:
        page = f"/api/public/{tenant}/campaigns/casa-privada"
        for path in (page, f"{page}/donations", f"/api/public/{tenant}/campaigns"):
            first, second = c.get(path), c.get(path)
            assert first.status_code == 200, (path, first.status_code, first.text)
            assert second.status_code == 200 and second.headers["X-Cache-Status"] == "HIT"
        assert c.get("/api/public/campaigns").status_code == 200
        static = c.get("/static/index.html")
        assert static.status_code == 200 and "<html" in static.text.lower()
