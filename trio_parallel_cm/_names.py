"""How a context manager is named in notes and reports."""

from __future__ import annotations

import inspect
from typing import Any


def name_of(cm: object, key: object = None) -> str:
    """The name of a context manager: its mapping key, its factory's name, or its type's.

    ``@asynccontextmanager`` objects keep the generator function they were made from as
    ``func``: ``open_db()`` is named ``open_db``.  Anything else is named by the qualified
    name of its type.
    """
    if key is not None:
        return str(key)
    func: Any = getattr(cm, "func", None)
    if inspect.isasyncgenfunction(func):
        return str(func.__name__)
    return type(cm).__qualname__
