"""The runtime seam: only ``_lowlevel.py`` touches ``trio.lowlevel``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "trio_parallel_cm"


def test_only_the_lowlevel_module_uses_trio_lowlevel() -> None:
    users: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in ("_lowlevel.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            elif isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.Attribute):
                names.append(ast.unparse(node))
            if any(name.startswith("trio.lowlevel") for name in names):
                users.append(f"{path.name}:{getattr(node, 'lineno', 0)}")
    assert users == []
    # And the engine does use the seam.
    assert "from ._lowlevel import" in (PACKAGE / "_holder.py").read_text()
