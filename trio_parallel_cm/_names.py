"""How a context manager is named in notes and reports."""

from __future__ import annotations

import inspect
from typing import Any


def name_of(cm: object, key: object = None) -> str:
    """The name of a context manager: its mapping key, its factory's name, or its type's.

    ``@asynccontextmanager`` objects keep the async generator they drive as ``gen``, named
    after the factory: ``open_db()`` is named ``open_db``.  (Their ``func`` attribute is
    deleted on entering.)  Anything else is named by the qualified name of its type.
    """
    if key is not None:
        return str(key)
    gen: Any = getattr(cm, "gen", None)
    if inspect.isasyncgen(gen):
        return str(gen.__name__)
    return type(cm).__qualname__
