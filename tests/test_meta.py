"""Meta tests: the public API, the schema document, the import layering."""

from __future__ import annotations

import ast
from pathlib import Path

import analyzer
from analyzer.model import schema

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "analyzer"


def test_public_api() -> None:
    assert sorted(analyzer.__all__) == sorted(
        ["__version__", "open_snapshot", "Snapshot", "AnalyzerError"])
    for name in analyzer.__all__:
        assert hasattr(analyzer, name)


def test_schema_doc_is_current() -> None:
    """docs/schema.md is generated from analyzer/model/schema.py; regenerate it with
    `python -m analyzer.model.schema > docs/schema.md`."""
    assert (ROOT / "docs" / "schema.md").read_text(encoding="utf-8") == schema.markdown()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("analyzer"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("analyzer"))
    return out


#: package → analyzer packages it must never import (data flows one way:
#: sources/formats → parsers → model → render → cli)
FORBIDDEN = {
    "sources": ("analyzer.parsers", "analyzer.model", "analyzer.render", "analyzer.cli"),
    "formats": ("analyzer.sources", "analyzer.parsers", "analyzer.model", "analyzer.render",
                "analyzer.cli"),
    "parsers": ("analyzer.render", "analyzer.cli"),
    "model": ("analyzer.parsers", "analyzer.sources", "analyzer.render", "analyzer.cli"),
    "render": ("analyzer.cli", "analyzer.parsers", "analyzer.sources"),
}


def test_import_layering() -> None:
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in (PKG / package).rglob("*.py"):
            for mod in _imports(path):
                if mod.startswith(forbidden):
                    bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_every_module_has_a_docstring() -> None:
    missing = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
               if p.name != "__init__.py" and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, missing


def test_every_sample_table_matches_the_schema() -> None:
    from tests.conftest import SAMPLE_NAMES, sample_snapshot

    assert SAMPLE_NAMES, "no committed samples found"
    for name in SAMPLE_NAMES:
        snap = sample_snapshot(name)
        for table in schema.TABLES:
            schema.validate(table, snap.tables[table])
