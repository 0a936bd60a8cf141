"""The house rules that imports must keep (run by `make lint`).

1. No import circle between the top-level folders: data flows connectors → schemas →
   verification → dags/plugins, so ``connectors`` and ``schemas`` import nothing of
   ``verification``, and nothing imports ``dags``, ``plugins``, ``bench`` or ``tests``.
2. No module of ``verification``, ``connectors`` or ``schemas`` is imported only by tests: each is
   imported by production code (another module, a DAG, the portal plugin, the benchmark harness,
   the CLI's command table) or is an entry point named in pyproject.toml.

Imports are read with ``ast`` (nothing is executed); an import inside a function counts the same
as one at the top. Exit status 1 and one line per broken rule when anything is wrong.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("verification", "connectors", "schemas")
# Who counts as a real user of a library module: the DAGs, the portal plugin, and the
# benchmark harness (`make bench`, `make eval-matching` run it); tests do not.
PRODUCTION = (*LIBRARIES, "dags", "plugins", "bench")
# Who may import whom, by top-level folder (a folder may always import itself).
ALLOWED = {
    "schemas": set(),
    "connectors": {"schemas"},
    "verification": {"schemas", "connectors"},
    "dags": {"schemas", "connectors", "verification"},
    "plugins": {"verification"},
    "bench": {"schemas", "connectors", "verification"},
    "scripts": {"schemas", "connectors", "verification"},
    "tests": {"schemas", "connectors", "verification", "bench", "tests", "dags"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path) -> set[str]:
    """Every dotted module name ``path`` imports (``from a.b import c`` gives a.b and a.b.c)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def python_files() -> list[Path]:
    skip = {".venv", ".tools", "var", ".git", "node_modules"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def string_references() -> set[str]:
    """Modules named in strings where production loads them by name: the CLI's command table
    (``_Entry("<module>", …)``), pyproject's entry points and the Alembic script location."""
    names: set[str] = set()
    table = (ROOT / "verification/cli/main.py").read_text(encoding="utf-8")
    names.update(f"verification.cli.{m}" for m in re.findall(r'_Entry\("(\w+)"', table))
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    names.update(re.findall(r'=\s*"([\w.]+):\w+"', project))
    return names


def main() -> int:
    problems: list[str] = []
    importers: dict[str, set[str]] = defaultdict(set)
    modules: dict[str, Path] = {}
    for path in python_files():
        name = module_name(path)
        top = name.split(".")[0]
        if top in LIBRARIES:
            modules[name] = path
        for imported in imported_names(path):
            target = imported.split(".")[0]
            if target in ALLOWED and target != top and top in ALLOWED \
                    and target not in ALLOWED[top]:
                problems.append(f"{path.relative_to(ROOT)}: {top}/ must not import {imported} "
                                f"({top}/ may import {', '.join(sorted(ALLOWED[top])) or 'none'})")
            importers[imported].add(name)
    production_refs = string_references()
    for name, path in sorted(modules.items()):
        if path.name == "__init__.py" or "migrations" in path.parts:
            continue  # packages are imported through their modules; Alembic loads revisions
        users = {u for u in importers.get(name, set()) if u.split(".")[0] in PRODUCTION}
        users.discard(name)
        if not users and name not in production_refs:
            problems.append(f"{path.relative_to(ROOT)}: imported by no production module "
                            "(only by tests, or not at all)")
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} import rule(s) broken", file=sys.stderr)
        return 1
    print(f"imports: {len(modules)} library modules, no circle between folders, "
          "none imported only by tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
