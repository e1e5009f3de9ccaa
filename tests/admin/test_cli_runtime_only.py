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
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions

from infra.servers import clean_env
from tests.services import ROOT


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; (]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _runtime_closure(names: set[str]) -> set[str]:
    """`names` and every distribution they require (extras left out), transitively."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def _dev_only_modules() -> list[str]:
    """Import names of the dev extras' distributions that the runtime ones do not
    pull in (PyYAML, for one, is required by sanic-ext)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _runtime_closure({_requirement_name(r) for r in project["dependencies"]})
    dev = {_requirement_name(r) for r in project["optional-dependencies"]["dev"]} - runtime
    return sorted(
        module
        for module, dists in packages_distributions().items()
        if any(d.lower().replace("_", "-") in dev for d in dists) and module.isidentifier()
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
    assert {"psutil", "matplotlib", "pytest", "playwright"} <= set(blocked), blocked
    assert "yaml" not in blocked  # sanic-ext requires PyYAML: a runtime dependency


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


def test_app_and_worker_import_without_the_dev_extras() -> None:
    """What the image runs besides the CLI: the API factory and the worker's jobs."""
    code = (
        f"import sys\nfor n in {_dev_only_modules()!r}:\n    sys.modules[n] = None\n"
        "import api.server, worker.main, notify.jobs\napi.server.BLUEPRINTS\n"
        "import importlib\nfor name in api.server.BLUEPRINTS:\n    importlib.import_module(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
