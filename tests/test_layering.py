"""Dependencies point one way (DESIGN.md): app → (schema, rest, auth, limits) → resolvers → (loaders, realtime, db)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["app", "db", "schema", "resolvers", "loaders", "auth", "limits", "realtime", "rest", "persisted_queries"]

# What each package may import of ours (itself always allowed).
ALLOWED = {
    "db": set(),
    "persisted_queries": set(),
    "loaders": {"db"},
    "realtime": {"db"},
    "resolvers": {"loaders", "realtime", "db"},
    "auth": {"resolvers", "loaders", "db"},
    "limits": {"resolvers"},
    "schema": {"resolvers", "auth", "db"},  # db: row types for Private[...] annotations only
    "rest": {"resolvers", "auth", "db"},
    "app": set(PACKAGES),
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def test_imports_point_one_way() -> None:
    wrong = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for imported in _imports(path) - ALLOWED[package] - {package}:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not wrong, "\n".join(wrong)
