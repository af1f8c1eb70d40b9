"""The layout is the architecture: imports that would make a layer depend on the one above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ivr.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "ivr"
# package -> the packages it must never import (also not lazily inside a function)
FORBIDDEN = {
    # The survey engine talks to a Dialog port; Asterisk lives in ivr/agi and ivr/call, so
    # `ivr simulate` and the benchmarks run a survey without it.
    "survey": ("ivr.agi", "ivr.call", "ivr.dialer", "ivr.campaign"),
    # Speech services know no transport (the AudioSocket media socket is ivr/call's).
    "speech": ("ivr.agi", "ivr.call", "ivr.dialer", "ivr.campaign"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.lineno, node.module)]
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_does_not_import_the_layers_above(package: str) -> None:
    bad = [f"{path.relative_to(PROJECT_ROOT)}:{line}: imports {name}"
           for path in sorted((PACKAGE / package).rglob("*.py"))
           for line, name in imported_modules(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])]
    assert bad == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from ivr.agi.channel import AGIHangup\n    import ivr.call\n")
    assert imported_modules(src) == [(2, "ivr.agi.channel"), (2, "ivr.agi.channel.AGIHangup"),
                                     (3, "ivr.call")]
