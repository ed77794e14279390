""".env.example is the list of what can be configured: every variable that
investiq/settings.py, its helpers (investiq/config.py) or gunicorn.conf.py reads is in it
(commented out when it has a default), under a comment saying what it does, and nothing
in it is read by nobody."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READERS = (ROOT / "investiq" / "settings.py", ROOT / "investiq" / "config.py", ROOT / "gunicorn.conf.py")
# django-environ's readers (env.str(...), ...; env(...) itself too).
ENV_METHODS = {"str", "int", "bool", "float", "list", "tuple", "dict", "json", "url", "db", "db_url", "path"}
KEY = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=")


def is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def variable_name(node: ast.AST | None, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    # An f-string or a variable would hide the name from this test: name it whole.
    raise AssertionError(f"{where}: an environment variable read by a computed name")


def reads_a_variable(func: ast.AST) -> bool:
    """Whether a call of `func` reads an environment variable named by its first argument."""
    if isinstance(func, ast.Name):
        return func.id == "env"  # env("NAME")
    if not isinstance(func, ast.Attribute):
        return False
    if isinstance(func.value, ast.Name) and func.value.id == "env":
        return func.attr in ENV_METHODS
    if isinstance(func.value, ast.Name) and func.value.id == "os":
        return func.attr == "getenv"
    return is_os_environ(func.value) and func.attr == "get"


def environment_reads(source: str, filename: str = "<source>") -> set[str]:
    """Names of the environment variables `source` reads: env.<type>("NAME", ...),
    env("NAME"), os.environ["NAME"], os.environ.get("NAME"), os.getenv("NAME") and
    "NAME" in os.environ. Writes (os.environ["NAME"] = ...) are not reads."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and reads_a_variable(node.func):
            named = [keyword.value for keyword in node.keywords if keyword.arg == "var"]
            names.add(variable_name((node.args or named or [None])[0], where))
        elif isinstance(node, ast.Subscript) and is_os_environ(node.value) and isinstance(node.ctx, ast.Load):
            names.add(variable_name(node.slice, where))
        elif isinstance(node, ast.Compare) and any(is_os_environ(c) for c in node.comparators):
            names.add(variable_name(node.left, where))
    return names


def read_by_the_app() -> dict[str, set[str]]:
    return {path.name: environment_reads(path.read_text(), str(path)) for path in READERS}


def example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def example_keys() -> set[str]:
    """Every NAME= line, set or commented out (# NAME=default)."""
    return {match.group(1) for line in example_lines() if (match := KEY.match(line))}


def test_every_variable_the_settings_and_gunicorn_read_is_in_env_example():
    reads = read_by_the_app()
    assert len(reads["settings.py"]) > 50 and "GUNICORN_TIMEOUT" in reads["gunicorn.conf.py"]
    assert {"DB_CONN_MAX_AGE", "DB_KEEPALIVES_IDLE", "DB_POOL_HOLD"} <= reads["config.py"]
    missing = {name: sorted(names - example_keys()) for name, names in reads.items()}
    assert {name: names for name, names in missing.items() if names} == {}


def test_env_example_names_nothing_that_nobody_reads():
    # compose.yaml reads some itself (${POSTGRES_PASSWORD}); monitoring/ has its own file.
    read = set().union(*read_by_the_app().values())
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "compose.yaml").read_text()))
    assert sorted(example_keys() - read) == []


def test_every_variable_in_env_example_has_a_comment():
    """Each NAME= line sits under a comment that explains it (one comment may explain
    the few lines right below it); a blank line ends the comment's reach."""
    lines = example_lines()
    uncommented = []
    for index, line in enumerate(lines):
        if not KEY.match(line):
            continue
        above = index - 1
        while above >= 0 and KEY.match(lines[above]):
            above -= 1
        if above < 0 or not lines[above].startswith("#"):
            uncommented.append(KEY.match(line).group(1))
    assert uncommented == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('X = env.int("A", default=1)\nY = env("B")\nZ = env.db("C", default="")', {"A", "B", "C"}),
        ('import os\na = os.environ.get("D")\nb = os.environ["E"]\nc = os.getenv("F")', {"D", "E", "F"}),
        ('import os\nif "G" in os.environ:\n    os.environ["H"] = "1"', {"G"}),
        ('X = env.db(var="I")', {"I"}),
    ],
)
def test_the_reads_are_found_in_every_form(source, expected):
    assert environment_reads(source) == expected


def test_a_read_by_a_computed_name_is_refused():
    with pytest.raises(AssertionError, match="computed name"):
        environment_reads('X = env.int(f"DB_{name}")')
