"""Behaviour as data: scripts, bodies, modes and scenarios (frozen, hashable)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

import attrs
from attrs import AttrsInstance

# Phases of a fake, as the library names them in its notes.
NEW: Final = "new"
ENTERING: Final = "entering"
OPEN: Final = "open"
EXITING: Final = "exiting"
CLOSED: Final = "closed"

#: Virtual seconds after which a scenario counts as deadlocked (they all end within 30).
DEADLOCK_AFTER: Final = 1000.0


# ---- behaviour as data ----------------------------------------------------------------------


def _short_repr(obj: AttrsInstance) -> str:
    """``Type(field=value, ...)`` with the fields left at their default omitted."""
    parts: list[str] = []
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if value != field.default:
            parts.append(f"{field.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


class Fault(enum.Enum):
    """An exception a fake raises: a fresh object each time, recorded by the fake."""

    ERROR = "ValueError"
    INTERRUPT = "KeyboardInterrupt"
    GROUP = "ExceptionGroup"
    #: A ``GeneratorExit``, as a generator-based context manager closed meanwhile raises.
    GENERATOR_EXIT = "GeneratorExit"
    #: A ``trio.Cancelled`` of its own making, stray if its task is not cancelled (an
    #: ``exit_fault`` only: raised once its own scopes are closed, so none takes it).
    CANCELLED = "Cancelled"

    def __repr__(self) -> str:
        return f"Fault.{self.name}"

    def make(self, label: str, cancelled: Callable[[str], BaseException]) -> BaseException:
        """A fresh one (``cancelled`` makes the loop's cancellation)."""
        if self is Fault.ERROR:
            return ValueError(label)
        if self is Fault.INTERRUPT:
            return KeyboardInterrupt(label)
        if self is Fault.GENERATOR_EXIT:
            return GeneratorExit(label)
        if self is Fault.CANCELLED:
            return cancelled(label)
        return ExceptionGroup(label, [ValueError(label), KeyError(label)])


class OpenFailure(enum.Enum):
    """How a fake fails (or ends) by itself, ``open_after`` seconds after ``__aenter__`` began."""

    #: A background task in the nursery it holds across the yield raises ``crash_fault``.
    CRASH = "crash"
    #: A ``trio.fail_after`` it holds across the yield fires: ``trio.TooSlowError``.
    FAIL_AFTER = "fail_after"
    #: A ``trio.move_on_after`` it holds across the yield fires: it ends by itself, no error.
    MOVE_ON = "move_on_after"

    def __repr__(self) -> str:
        return f"OpenFailure.{self.name}"


@attrs.frozen(repr=False)
class Script:
    """What one fake context manager does.  ``None`` latencies mean no checkpoint at all.

    Its resources (a cancel scope, then a deadline, then a nursery) are opened at the start
    of ``__aenter__``, before the enter latency, and closed at the start of ``__aexit__``,
    passing the exception on as nested ``with`` blocks would; the exit latency follows.
    A failure while entering unwinds them and raises what comes out; a deadline that fires
    while entering fails (``FAIL_AFTER``) or cuts the enter short (``MOVE_ON``).
    """

    enter_delay: float | None = 0
    enter_fault: Fault | None = None
    open_failure: OpenFailure | None = None
    open_after: float = 1.5
    crash_fault: Fault = Fault.ERROR
    exit_delay: float | None = 0
    #: The exit latency is a graceful close, shielded from cancellation.
    shield_exit: bool = False
    exit_fault: Fault | None = None
    #: Swallow the exception ``__aexit__`` receives (inside its resources) and return True.
    suppress: bool = False
    #: Return ``1`` instead of ``True`` when it swallowed one: a truthy non-bool
    #: suppresses, as ``async with`` takes it.
    returns_one: bool = False
    #: Hold a nursery across the yield, and yield it (a ``CRASH`` holds one anyway).
    nursery: bool = False
    #: Hold a plain cancel scope across the yield.
    scope: bool = False

    def __repr__(self) -> str:
        return _short_repr(self)

    def __attrs_post_init__(self) -> None:
        if Fault.CANCELLED in (self.enter_fault, self.crash_fault):
            raise ValueError("a fake raises a Cancelled of its own only as it exits")

    @property
    def has_nursery(self) -> bool:
        return self.nursery or self.open_failure is OpenFailure.CRASH


class Ending(enum.Enum):
    RETURN = "return"
    ERROR = "ValueError"
    INTERRUPT = "KeyboardInterrupt"
    #: An ``ExceptionGroup``, as a nursery in the body raises.
    GROUP = "ExceptionGroup"
    #: ``GeneratorExit`` thrown into the body (an async generator closed while it yields
    #: inside the block).
    GENERATOR_EXIT = "GeneratorExit"

    def __repr__(self) -> str:
        return f"Ending.{self.name}"


@attrs.frozen(repr=False)
class Body:
    """What the body of the block does."""

    #: Seconds it sleeps before it ends (``None``: no checkpoint at all).
    delay: float | None = 0
    ending: Ending = Ending.RETURN
    #: Start a child task, sleeping ``child_for``, in the nursery this context manager
    #: yielded (the index of a script with ``has_nursery``).
    spawn: int | None = None
    child_for: float = 2
    #: Seconds of shielded cleanup when an exception (a cancellation) goes through it.
    cleanup: float | None = None

    def __repr__(self) -> str:
        return _short_repr(self)


class Close(enum.Enum):
    """How ``Mode.HANDLES`` closes each handle once the body has returned (reverse order)."""

    #: ``await handle.aclose()``.
    ACLOSE = "aclose"
    #: ``await handle.aexit(exc)``, with a fresh ``ValueError`` made for that handle: it
    #: must reach ``__aexit__``, and the result say whether ``__aexit__`` suppressed it.
    AEXIT = "aexit"
    #: Two closers at once, ``aexit(exc1)`` and ``aexit(exc2)`` each in a task of its own:
    #: one exit, with the exception of the one that came first; both wait for it and get
    #: the same result.
    TWO = "two closers"

    def __repr__(self) -> str:
        return f"Close.{self.name}"


class Mode(enum.Enum):
    """Which public face of the library runs the context managers."""

    #: ``parallel_with(*cms)``.
    PARALLEL = "parallel"
    #: ``parallel_with({name: cm})``.
    MAPPING = "mapping"
    #: ``ParallelExitStack``: ``enter_all(*cms[:split])``, then ``enter``/``enter_all`` of
    #: the rest (empty stages are skipped).
    STACK = "stack"
    #: ``start_context`` for each in turn in one nursery, then ``aclose`` in reverse order.
    HANDLES = "handles"

    def __repr__(self) -> str:
        return f"Mode.{self.name}"


@attrs.frozen(repr=False)
class Scenario:
    """One run: the fakes, the body, the mode and an outer cancellation."""

    scripts: tuple[Script, ...] = ()
    body: Body = Body()
    mode: Mode = Mode.PARALLEL
    #: ``Mode.STACK``: the first stage is ``scripts[:split]``, the second the rest, or
    #: ``scripts[split:third_from]`` when a third stage, ``scripts[third_from:]``, follows.
    split: int = 1
    #: Virtual time at which a ``trio.move_on_after`` around the block fires.
    cancel_at: float | None = None
    #: The ``limit=`` option (not for ``Mode.HANDLES``).
    limit: int | None = None
    #: Seeds Trio's scheduler (it shuffles each batch of runnable tasks).
    seed: int = 0
    #: ``Mode.HANDLES``: how each handle is closed.
    close: Close = Close.ACLOSE
    #: ``Mode.STACK``: where the third stage begins (``None``: two stages at most).
    third_from: int | None = None
    #: Pass ``observer=`` (to every stage, every ``start_context``), recording its events.
    observe: bool = False
    #: The ``exit_timeout=`` option (to every stage, every ``start_context``): each exit
    #: shielded from the caller's cancellation, and cancelled that long after it began,
    #: failing with ``trio.TooSlowError``.  (Choose one that no other event ties with.)
    exit_timeout: float | None = None
    #: The ``enter_timeout=`` option, likewise: each ``__aenter__`` cancelled that long
    #: after it began, failing with ``trio.TooSlowError``.  (Not with ``limit``: an enter
    #: may time out waiting for a slot, which no fake sees.)
    enter_timeout: float | None = None
    #: The event loop: ``"trio"``, or ``"asyncio"`` (``tests/harness/loops.py``).
    runtime: str = "trio"
    #: asyncio: the outer cancellation at ``cancel_at`` is a native ``Task.cancel`` of the
    #: task running the block (as ``asyncio.timeout`` makes), not an anyio scope's.
    native_cancel: bool = False

    def __repr__(self) -> str:
        return _short_repr(self)

    def __attrs_post_init__(self) -> None:
        spawn = self.body.spawn
        if spawn is not None and not self.scripts[spawn].has_nursery:
            raise ValueError(f"the body spawns into scripts[{spawn}], which has no nursery")
        if self.mode is Mode.HANDLES and self.limit is not None:
            raise ValueError("start_context takes no limit")
        if self.mode is not Mode.HANDLES and self.close is not Close.ACLOSE:
            raise ValueError("only handles are closed by hand")
        if self.enter_timeout is not None and self.limit is not None:
            raise ValueError("an enter_timeout with a limit may run out before __aenter__")
        if self.native_cancel and self.runtime != "asyncio":
            raise ValueError("a native cancellation is asyncio's")
        if self.third_from is not None and not (
            self.mode is Mode.STACK and self.split <= self.third_from <= len(self.scripts)
        ):
            raise ValueError("a third stage is a stack's, after the first split")
