"""The operator CLI as the container image has it: runtime dependencies only.

The image runs `conectades db migrate` (a one-shot job) and `conectades worker` from
a `pip install .` without the dev extras; the CLI imported the load tools (psutil)
at import time, so every command failed there. Here the dev-only distributions are
made unimportable (as if not installed) and the CLI is run in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

from infra.servers import clean_env
from tests.services import ROOT


def _dev_only_modules() -> list[str]:
    """Import names of the dev extras' distributions that the runtime ones do not need."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}

    dev = names(project["optional-dependencies"]["dev"]) - names(project["dependencies"])
    return sorted(
        module
        for module, dists in packages_distributions().items()
        if any(d.lower() in dev for d in dists) and module.isidentifier()
    )


RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` raises ModuleNotFoundError, as if absent
from typer.testing import CliRunner
from admin.cli import app
result = CliRunner().invoke(app, sys.argv[1:], env={{"COLUMNS": "200"}})
print(result.output)
sys.exit(result.exit_code)
"""


def cli(*args: str, blocked: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN.format(blocked=blocked), *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dev_only_modules_are_found() -> None:
    blocked = _dev_only_modules()
    assert {"psutil", "matplotlib", "pytest", "yaml"} <= set(blocked), blocked


def test_cli_commands_work_without_the_dev_extras() -> None:
    blocked = _dev_only_modules()
    for args in (["--help"], ["worker", "--help"], ["db", "migrate", "--help"], ["seed", "--help"]):
        done = cli(*args, blocked=blocked)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        assert "Usage" in done.stdout


def test_load_tools_say_what_to_install_without_the_dev_extras() -> None:
    done = cli("bench", blocked=_dev_only_modules())
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "pip install -e '.[dev]'" in done.stdout


def test_load_tools_are_there_with_the_dev_extras() -> None:
    done = cli("bench", "--help", blocked=[])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--rounds" in done.stdout
