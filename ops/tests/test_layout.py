"""Dependencies run one way, read from the real import graph (the source, parsed).

Records (trades, analyses, positions, their intake) are what the trading, API, alerts
and health packages build on; they never import those back. Alpaca has one client. No
module registers anything by imports at its bottom, and no class of ours borrows the
name of a Django class we use.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ops

OPS = Path(ops.__file__).parent
ROOT = OPS.parent


def source_modules(under: Path = OPS) -> Iterator[Path]:
    """Every .py file of the app's code: not its migrations, not its tests."""
    for path in sorted(under.rglob("*.py")):
        parts = path.relative_to(OPS).parts
        if parts[0] not in ("migrations", "tests"):
            yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The modules `path` imports anywhere in it (top level, functions, TYPE_CHECKING):
    for `from ops.trading import broker`, both ops.trading and ops.trading.broker."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imports_any(path: Path, packages: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name in imported_modules(path)
        if any(name == package or name.startswith(package + ".") for package in packages)
    )


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


BUILT_ON_RECORDS = ("ops.trading", "ops.api", "ops.alerts", "ops.health", "ops.monitoring")
# ops.models imports every capability's models (trading's too), so importing the hub
# from records would be the same cycle by another name.
NOT_FROM_RECORDS = (*BUILT_ON_RECORDS, "ops.models", "ops.admin")


def test_records_never_import_the_packages_built_on_them():
    modules = list(source_modules(OPS / "records"))
    assert {path.name for path in modules} >= {"__init__.py", "models.py", "intake.py", "admin.py"}
    wrong = {relative(path): imports_any(path, NOT_FROM_RECORDS) for path in modules}
    assert {path: names for path, names in wrong.items() if names} == {}


def test_trades_analyses_and_positions_are_defined_by_the_records_package():
    from ops.api.models import ApiClient
    from ops.models import Analysis, Position, Trade

    assert {model.__module__ for model in (Trade, Analysis, Position)} == {"ops.records.models"}
    assert ApiClient.__module__ == "ops.api.models"


def test_the_broker_cancel_and_the_alpaca_probe_share_one_alpaca_client():
    broker, probes = OPS / "trading" / "broker.py", OPS / "health" / "probes.py"
    for path in (broker, probes):
        assert "ops.alpaca" in imported_modules(path), relative(path)
    # The probe needs the Alpaca client, not the trading package.
    assert imports_any(probes, ("ops.trading",)) == []


def test_only_the_alpaca_client_builds_the_alpaca_credentials():
    building = [relative(path) for path in source_modules() if "APCA-API-SECRET-KEY" in path.read_text()]
    assert building == ["ops/alpaca.py"]


def is_import(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Import | ast.ImportFrom)


def is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


def late_imports(path: Path) -> list[int]:
    """Line numbers of top-level imports that come after the first other statement."""
    body = ast.parse(path.read_text(), str(path)).body
    if body and is_docstring(body[0]):
        body = body[1:]
    first_other = next((index for index, statement in enumerate(body) if not is_import(statement)), len(body))
    return [statement.lineno for statement in body[first_other:] if is_import(statement)]


def test_no_module_imports_anything_after_its_first_statement():
    # An import at the bottom of a file is a hidden registration (models, admins)
    # and a cycle waiting to happen: everything a module needs is named at its top.
    late = {relative(path): late_imports(path) for path in source_modules()}
    assert {path: lines for path, lines in late.items() if lines} == {}


def django_names_we_use() -> set[str]:
    names: set[str] = set()
    for path in OPS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "django":
                names.update(alias.name for alias in node.names)
    return names


def test_no_class_of_ours_is_named_like_a_django_class_we_use():
    used = django_names_we_use()
    assert {"JsonResponse", "HttpResponse"} <= used  # the check sees what it must
    ours = {
        f"{relative(path)}:{node.name}"
        for path in OPS.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ClassDef) and node.name in used
    }
    assert ours == set()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"""Doc."""\n\nfrom a import b\nimport c\n\nX = 1\n', []),
        ("import a\n\nX = 1\n\nfrom b import c  # registers c\n", [5]),
        ("def f():\n    import a\n", []),
    ],
)
def test_late_imports_are_found_where_they_are(tmp_path: Path, source: str, expected: list[int]):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert late_imports(path) == expected


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """import-linter on a copy of the project's packages and pyproject.toml."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "tests", "migrations")
    for package in ("ops", "investiq"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layer_contracts_hold_and_an_upward_import_breaks_them(tree: Path):
    kept = lint_imports(tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout
    # The gate reaching up into the API, as it did before it took the client loosely typed.
    gate = tree / "ops" / "trading" / "gate.py"
    gate.write_text(gate.read_text() + "\nfrom ops.api.models import ApiClient  # noqa\n")
    broken = lint_imports(tree)
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout
    assert "ops.trading.gate -> ops.api.models" in broken.stdout
