"""One behavioural suite, several event loops: the runtime a test runs on, and its vocabulary.

**Running a test on several runtimes.**  A test module (or a test) marked
``pytest.mark.runtimes`` runs each of its ``async def`` tests once per runtime, with ids
``test_x[trio]``, ``test_x[asyncio]``, ``test_x[uvloop]`` (``tests/conftest.py`` does it):

* ``trio``: pytest-trio, as any test of the suite (its ``autojump_clock``, when the test
  takes it, is the virtual clock);
* ``asyncio``: ``tests.aio.VirtualTimeLoop`` (virtual time, as ``autojump_clock``), in
  debug mode;
* ``uvloop``: uvloop, in debug mode.  uvloop has no virtual
  time, so **the rule is the Trio clock's**: a test that takes ``autojump_clock`` waits on
  the clock and does not run on uvloop; one that does not take it runs in real time on
  Trio today, so it runs on uvloop too.

Marks (registered in ``tests/conftest.py``):

* ``pytest.mark.runtimes``: as above (``pytestmark = pytest.mark.runtimes`` in a module);
* ``pytest.mark.trio_only(reason=...)``: a test of a Trio-only API (a ``trio.Nursery``
  passed in, ``trio.lowlevel`` details): it runs on Trio only (id ``test_x[trio]``);
* ``pytest.mark.asyncio_gap(reason=...)``: a library gap on asyncio, not one of the
  documented differences (``trio_parallel_cm/_runtime/_asyncio.py``): its asyncio and uvloop
  runs are ``xfail(strict=True)``.

A test that takes the ``runtime`` fixture gets its runtime's name.  A sync test is not
parametrized (it says itself which loop it runs).  Async fixtures are pytest-trio's and
serve the Trio runs only (pytest-trio raises "Trio fixtures can only be used by Trio tests"
otherwise): give such a test a sync fixture, or make it ``trio_only``.  (The converted
modules have one fixture, a sync one.)

**Writing a test body or a fake.**  ``from tests import runtime as rt`` (``runtime`` is the
fixture's name), then the functions below instead of ``trio.*``: each asks
``sniffio`` which library runs it and calls that runtime's native operation
(``tests.harness.loops``: ``trio.sleep``, ``trio.CancelScope``,
``trio.lowlevel.current_task`` on Trio, so the Trio runs test exactly what they did;
``asyncio.sleep``, anyio's cancel scopes and task groups on asyncio).  Where a result
differs by design on asyncio, assert it through the runtime's own class:
``runtime.cancelled()`` (``trio.Cancelled`` / ``asyncio.CancelledError``),
``runtime.too_slow()`` (``trio.TooSlowError`` / ``TimeoutError``), or ``on_trio()``.
``move_on_after`` is an anyio scope on asyncio (level-triggered, as Trio's);
``cancel_after`` is asyncio's *native* cancellation (``Task.cancel``, as
``asyncio.timeout`` makes), where the library's asyncio runtime differs by design: use both.

Converting a Trio test module: ``pytestmark = pytest.mark.runtimes``, replace ``trio.sleep``,
``trio.CancelScope``, ``trio.move_on_after``, ``trio.open_nursery``, ``trio.current_time``,
``trio.lowlevel.current_task``/``checkpoint``, ``trio.testing.wait_all_tasks_blocked``,
``trio.Cancelled`` and ``trio.TooSlowError`` by their ``rt.`` names (``tests.fakes`` already
speaks this vocabulary), keep ``autojump_clock`` where the test waits on the clock, and run
it: a failure on asyncio is a documented difference (assert it), or a library gap
(``asyncio_gap``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Final, Protocol, cast

import pytest
import sniffio

from tests.harness.loops import ASYNCIO, LOOPS, TRIO, Loop, Scope

#: The runtimes a ``pytest.mark.runtimes`` test runs on, and those on the clock of the
#: ``VirtualTimeLoop`` or of Trio (see the module's notes).
UVLOOP: Final = "uvloop"
RUNTIMES: Final = (TRIO, ASYNCIO, UVLOOP)
ASYNCIO_FAMILY: Final = (ASYNCIO, UVLOOP)


class Deadline(Protocol):
    """What ``move_on_after`` and ``cancel_after`` give: a block that may swallow its own
    cancellation (so that type checkers know code after it can run)."""

    @property
    def cancelled_caught(self) -> bool: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc_info: object) -> bool: ...


def loop() -> Loop:
    """The runtime of the running task (uvloop is asyncio's)."""
    return LOOPS[sniffio.current_async_library()]


def on_trio() -> bool:
    return sniffio.current_async_library() == TRIO


def cancelled() -> type[BaseException]:
    """What a cancelled task meets: ``trio.Cancelled``, or ``asyncio.CancelledError``."""
    return loop().Cancelled


def too_slow() -> type[Exception]:
    """What a timeout raises: ``trio.TooSlowError``, or the builtin ``TimeoutError``."""
    return loop().TooSlow


def current_time() -> float:
    return loop().current_time()


def current_task() -> object:
    return loop().current_task()


def sleep(seconds: float) -> Awaitable[None]:
    return loop().sleep(seconds)


def sleep_forever() -> Awaitable[None]:
    return loop().sleep_forever()


def checkpoint() -> Awaitable[None]:
    return loop().checkpoint()


def wait_all_tasks_blocked() -> Awaitable[None]:
    """Until every other task is blocked (on asyncio: on the ``VirtualTimeLoop`` only)."""
    return loop().wait_all_tasks_blocked()


def CancelScope(*, shield: bool = False) -> Scope:  # (named as the class it makes)
    return loop().scope(shield=shield)


def move_on_after(seconds: float) -> Deadline:
    return cast(Deadline, loop().move_on_after(seconds))


def fail_after(seconds: float) -> AbstractContextManager[Any]:
    return loop().fail_after(seconds)


def open_nursery() -> AbstractAsyncContextManager[Any]:
    """A Trio nursery, or on asyncio an anyio task group (what ``start_context`` takes)."""
    return loop().open_group()


def cancel_after(seconds: float) -> Deadline:
    """A cancellation of the current task in ``seconds``, moved on from as a scope's: on
    Trio, ``trio.move_on_after`` (Trio has no other kind); on asyncio a *native* one,
    ``Task.cancel`` as ``asyncio.timeout`` makes, edge-triggered, which the library tells
    apart from anyio's scopes (``_runtime/_asyncio.py``'s notes)."""
    if on_trio():
        return move_on_after(seconds)
    return cast(Deadline, loop().cancel_after(seconds))


#: The two kinds of outer cancellation, as a test parameter ``deadline``: a cancel scope's
#: (``move_on_after``), and on asyncio a native one (``cancel_after``: ``Task.cancel``);
#: on Trio the two are the same scope.
OUTER_CANCELLATIONS: Final = pytest.mark.parametrize(
    "deadline", [move_on_after, cancel_after], ids=["scope", "native"]
)
