"""Running the documentation's examples (``docs/examples/*.py``) as tests do."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import cast

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_main(name: str) -> Callable[[], Awaitable[None]]:
    """The ``main`` coroutine function of an example."""
    return cast("Callable[[], Awaitable[None]]", load_example(name).main)


def expected_output(name: str) -> str:
    """What ``docs/examples/<name>.txt`` says the example prints."""
    return (EXAMPLES / f"{name}.txt").read_text()
