"""How a context manager is named in notes and reports."""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any


def name_of(cm: object, key: object = None) -> str:
    """The name of a context manager: its mapping key, its factory's name, or its type's.

    * ``@asynccontextmanager`` objects keep what their function returned as ``gen``, named
      after the function: ``open_db()`` is named ``open_db``, also when the function is not
      an async generator (a coroutine function fails on entering, and is named all the
      same), and when it was called through a ``functools.partial``.  (Their ``func``
      attribute is deleted on entering; ``gen`` stays.)
    * ``contextlib.aclosing(thing)`` is named after what it closes: ``aclosing(ticks)``.
    * An ``in_thread`` adapter is named after its factory: ``in_thread(connect)``.
    * Anything else is named by the qualified name of its type (``nullcontext``,
      ``NurseryManager``, ``Connection``).
    """
    if key is not None:
        return str(key)
    own: object = getattr(cm, "_tpcm_name", None)  # ours name themselves: in_thread(connect)
    if isinstance(own, str):
        return own
    gen: Any = getattr(cm, "gen", None)
    if inspect.isasyncgen(gen) or inspect.iscoroutine(gen) or inspect.isgenerator(gen):
        return str(gen.__name__)
    thing: object = getattr(cm, "thing", None)  # what an aclosing closes
    if isinstance(cm, contextlib.aclosing):
        inner = getattr(thing, "__name__", None)
        return f"aclosing({inner})" if isinstance(inner, str) else "aclosing"
    return type(cm).__qualname__


def factory_name(factory: object) -> str:
    """The name of a factory: its ``__name__``, looking through ``functools.partial``."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    name = getattr(factory, "__name__", None)
    return name if isinstance(name, str) else type(factory).__qualname__
