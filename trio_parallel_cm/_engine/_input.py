"""Checking what was passed, before anything is entered."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from ._holder import Holder
from ._options import Options


def is_async_cm(obj: object) -> bool:
    """Whether ``async with obj`` would find the methods it needs (on the type, as it does)."""
    cls = type(obj)
    return hasattr(cls, "__aenter__") and hasattr(cls, "__aexit__")


def _close_coroutines(objects: Sequence[object]) -> None:
    # A coroutine passed by mistake was never awaited: close it so that no "coroutine ...
    # was never awaited" warning follows our TypeError.
    for obj in objects:
        if isinstance(obj, Coroutine):
            obj.close()


PROTOCOL = ("__aenter__", "__aexit__")


def _not_a_cm(obj: object, where: str) -> TypeError:
    """What is wrong with ``obj``, which is not an async context manager, named exactly.

    Worded as Python words it (``async with 42`` raises "'int' object does not support
    the asynchronous context manager protocol"; from 3.11 it adds "(missed __aexit__
    method)" when only that one is missing), and more precise: always the methods missed.
    """
    cls = type(obj)
    missed = [method for method in PROTOCOL if not hasattr(cls, method)]
    if isinstance(obj, Coroutine):
        return TypeError(
            f"{where} is a coroutine ({obj!r}), not an async context manager: was a "
            "context-manager factory awaited, or an async function passed? Pass the context "
            "manager itself, as in `parallel_with(open_db())`, not `await open_db()`."
        )
    methods = " and ".join(missed) + (" methods" if len(missed) > 1 else " method")
    message = (
        f"{where} ({obj!r}) does not support the asynchronous context manager protocol "
        f"(missed {methods})"
    )
    if len(missed) == len(PROTOCOL):
        if hasattr(cls, "__enter__") and hasattr(cls, "__exit__"):
            message += (
                ": it is a synchronous context manager. Hold it in a thread of its own with "
                "`in_thread(factory, *args)`, which makes it there, or enter it with a plain "
                "`with` around or inside the block."
            )
        elif callable(obj):
            message += ". Did you forget to call it?"
    return TypeError(message)


def holders_for(
    args: tuple[Any, ...], options: Options
) -> tuple[list[Holder], list[object] | None]:
    """Holders for ``parallel_with(*args)`` with ``options``, and the keys when a single
    mapping was given.

    Raises ``TypeError`` (wrong kind of object) or ``ValueError`` (one object twice)
    before anything is entered, closing any coroutine among the arguments.
    """
    keys: list[object] | None = None
    if len(args) == 1 and not is_async_cm(args[0]) and isinstance(args[0], Mapping):
        mapping: Mapping[object, object] = args[0]  # pyright: ignore[reportUnknownVariableType]
        keys = list(mapping)
        cms: list[object] = list(mapping.values())
    else:
        cms = list(args)

    def place(position: int) -> str:  # only for a message: not formatted per argument
        return f"argument {position}" if keys is None else f"the value for key {keys[position]!r}"

    seen: dict[int, int] = {}
    for position, cm in enumerate(cms):
        if not is_async_cm(cm):
            _close_coroutines(cms)
            raise _not_a_cm(cm, place(position))
        first = seen.setdefault(id(cm), position)
        if first != position:
            _close_coroutines(cms)
            raise ValueError(
                f"{place(position)} is the same object as {place(first)} ({cm!r}): a "
                "context manager can be entered only once"
            )
    if keys is None:
        return [Holder(cm, position, options=options) for position, cm in enumerate(cms)], None
    return [
        Holder(cm, position, key, options=options)
        for position, (key, cm) in enumerate(zip(keys, cms, strict=True))
    ], keys


def holder_for(cm: object, where: str, options: Options, key: object = None) -> Holder:
    """A holder for one context manager given as ``where`` (a ``TypeError`` if it is not one)."""
    return Holder(checked_result(cm, where), 0, key, options=options)


def checked_result(obj: object, where: str) -> object:
    """``obj`` if it is an async context manager; else a ``TypeError`` (a coroutine closed)."""
    if not is_async_cm(obj):
        _close_coroutines([obj])
        raise _not_a_cm(obj, where)
    return obj


def check_observer(observer: object) -> None:
    """``TypeError`` for an ``observer=`` that cannot be called with the events."""
    if observer is not None and not callable(observer):
        raise TypeError(
            f"observer must be a callable taking a PhaseEvent (a Timeline, say), not {observer!r}"
        )
