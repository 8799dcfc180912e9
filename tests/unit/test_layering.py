"""Arrows point from agents/ to the rest, never back; the core stays pure."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "streams": {
        "faust",
        "mode",
        "aiokafka",
        "clickhouse_connect",
        "chdb",
        "prometheus_client",
        "agents",
        "sinks",
        "schemas",
        "deploy",
    },
    "schemas": {"faust", "mode", "aiokafka", "clickhouse_connect", "agents", "sinks"},
    "sinks": {"faust", "mode", "agents"},
    "deploy": {"faust", "mode", "agents", "sinks", "schemas"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if imported_roots(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_the_core_reads_no_clock() -> None:
    for path in (ROOT / "streams").rglob("*.py"):
        text = path.read_text()
        assert "time.time(" not in text and "datetime.now(" not in text and "import time" not in text, path
