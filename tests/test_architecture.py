"""The layers of docs/architecture.md: which top-level package may import which.

A package imports only those below it, so the graph has no cycle; api/ (HTTP) is
imported by nothing but the CLI (an entry point); db/ and cache/ import nothing of
ours. Imports inside functions count too (a late import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict

from tests.services import ROOT

PACKAGES = ("db", "cache", "tenants", "edge", "notify", "worker", "api", "infra", "admin", "load")

# What each package may import (docs/architecture.md, "imports" column).
ALLOWED: dict[str, set[str]] = {
    "db": set(),
    "cache": set(),
    "edge": set(),
    "tenants": {"db", "cache"},
    "notify": {"db"},
    "worker": {"db", "notify"},
    "api": {"db", "cache", "tenants", "edge", "notify", "worker"},
    "infra": {"db", "cache", "tenants", "edge"},
    "load": {"db", "cache", "tenants", "edge", "infra"},
    "admin": {"db", "cache", "tenants", "edge", "notify", "worker", "api", "infra", "load"},
}


def imports() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES and top != package:
                        found[package][top].add(str(path.relative_to(ROOT)))
    return found


def test_every_package_is_placed() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk == set(PACKAGES), on_disk ^ set(PACKAGES)


def test_packages_import_only_the_layers_below() -> None:
    wrong = [
        f"{package} imports {target} ({', '.join(sorted(files))})"
        for package, targets in imports().items()
        for target, files in targets.items()
        if target not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_allowed_graph_has_no_cycle() -> None:
    seen: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, " -> ".join((*path, package))
        if package in seen:
            return
        for target in ALLOWED[package]:
            visit(target, (*path, package))
        seen.add(package)

    for package in PACKAGES:
        visit(package, ())


def test_sql_lives_in_db() -> None:
    """Statements are named in db/ (db/queries, migrations); elsewhere none is spelled."""
    verbs = ("SELECT ", "INSERT INTO ", "UPDATE ", "DELETE FROM ")
    offenders = []
    for package in PACKAGES:
        if package in ("db", "load"):  # load/ sets up its own throwaway benchmark tables
            continue
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = node.value.lstrip()
                    if text.startswith(verbs) and (
                        " FROM " in text or " SET " in text or "VALUES" in text
                    ):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_every_package_is_in_the_distribution() -> None:
    """pyproject lists the packages `pip install .` builds (the container image): a
    subpackage left out (admin/commands, load/experiments) is missing only there."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert on_disk <= listed, sorted(on_disk - listed)
