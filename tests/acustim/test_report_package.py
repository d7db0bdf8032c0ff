"""The report package keeps the boundaries its modules' docstrings state: only ``pdf`` touches
Qt (and only inside its functions, so importing ``acustim.report`` loads no Qt), and nothing in
it calls a method of the records store that writes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import acustim.report

PACKAGE = Path(acustim.report.__file__).parent
#: RecordStore's methods that write (acustim/records/store.py)
STORE_WRITES = {
    "start_session",
    "add_event",
    "add_frame",
    "set_session_firmware",
    "end_session",
    # schema 3: courses, outcomes, adverse events, STRICTA entries
    "create_course",
    "link_session",
    "link_next_session",
    "add_outcome",
    "add_outcomes",
    "add_adverse_event",
    "set_stricta_defaults",
    "set_session_notes",
    "set_session_stricta",
}


def imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """Every module imported, and whether the import is at module level."""
    top = {id(n) for n in getattr(tree, "body", [])}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top))
    return found


def test_only_the_pdf_module_imports_qt_and_only_inside_its_functions() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        qt = [
            (m, top) for m, top in imports(ast.parse(path.read_text())) if m.startswith("PySide6")
        ]
        if path.name == "pdf.py":
            assert qt and not any(top for _, top in qt), path
        else:
            assert not qt, f"{path.name} imports Qt: {qt}"
    code = "import sys, acustim.report; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_nothing_in_the_report_writes_to_the_store() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        calls = {
            n.func.attr
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
        }
        assert not calls & STORE_WRITES, f"{path.name} calls {calls & STORE_WRITES}"
