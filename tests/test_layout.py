"""The test tree's layout: conftest.py files hold fixtures and hooks only; helpers live in support modules.

pytest imports every conftest.py itself, so a helper defined there and imported by a test module exists twice
(once as pytest's conftest plugin, once as the imported module) and hides where it comes from. Helpers go to a
`support.py` next to the tests (tests/support.py, tests/payments/support.py, tests/voucher/support.py, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr == "fixture"
    return isinstance(target, ast.Name) and target.id == "fixture"


def conftest_helpers(source: str) -> list[str]:
    """The public top-level functions and classes of a conftest that are neither fixtures nor hooks."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found.append(node.name)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            public = not node.name.startswith("_") and not node.name.startswith("pytest_")
            if public and not any(_is_fixture(d) for d in node.decorator_list):
                found.append(node.name)
    return found


def conftest_imports(source: str) -> list[str]:
    """The imports of a module that take something from a conftest.py."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and "conftest" in (node.module or "").split("."):
            found.append(f"from {'.' * node.level}{node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if "conftest" in a.name.split(".")]
    return found


def test_the_checks_see_helpers_and_their_imports() -> None:
    source = (
        "import pytest\nfrom pytest import fixture\n"
        "@pytest.fixture\ndef ok(): ...\n"
        "@pytest.fixture(scope='session')\ndef ok_too(): ...\n"
        "@fixture\ndef ok_three(): ...\n"
        "def pytest_report_header(config): ...\n"
        "def _private(): ...\n"
        "def helper(): ...\n"
        "async def other(): ...\n"
        "@staticmethod\ndef decorated(): ...\n"
        "class Driver: ...\n"
        "class _Hidden: ...\n"
    )
    assert conftest_helpers(source) == ["helper", "other", "decorated", "Driver"]
    importing = (
        "from .conftest import item\nfrom tests.payments.conftest import Pay\n"
        "import tests.conftest\nfrom .support import fine\n"
        "def f():\n    from ..conftest import late\n"
    )
    assert conftest_imports(importing) == [
        "from .conftest import ...",
        "from tests.payments.conftest import ...",
        "tests.conftest",
        "from ..conftest import ...",
    ]


CONFTESTS = sorted(TESTS.rglob("conftest.py"))


def test_there_are_conftests_to_check() -> None:
    assert TESTS / "conftest.py" in CONFTESTS
    assert TESTS / "payments" / "conftest.py" in CONFTESTS


@pytest.mark.parametrize("path", CONFTESTS, ids=lambda p: str(p.relative_to(TESTS)))
def test_a_conftest_defines_only_fixtures_and_hooks(path: Path) -> None:
    helpers = conftest_helpers(path.read_text(encoding="utf-8"))
    assert not helpers, f"{path}: move {helpers} to a support module next to it"


def test_no_module_imports_from_a_conftest() -> None:
    offenders = {
        str(p.relative_to(TESTS)): found
        for p in sorted(TESTS.rglob("*.py"))
        if (found := conftest_imports(p.read_text(encoding="utf-8")))
    }
    assert not offenders, offenders
