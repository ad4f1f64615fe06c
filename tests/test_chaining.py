"""Exceptions raised by ``__aexit__`` chain (``__context__``) exactly as nested blocks chain them.

The reference is the interpreter itself (each test runs the same context managers in
nested ``async with`` blocks and compares) and CPython's own tests of ``ExitStack`` and
``AsyncExitStack`` (Lib/test/test_contextlib.py: ``test_exit_exception_chaining_reference``,
``test_exit_exception_explicit_none_context``, ``test_exit_exception_with_existing_context``,
``test_exit_exception_traceback``), replayed here with one context manager per stage.
Each runs on Trio and on asyncio (``tests/runtime.py``; on uvloop too, those without the
clock).
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import FrameType, TracebackType
from typing import Any

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.fakes import FakeCM, Log, crashes_while_open, members
from trio_parallel_cm import ParallelExitStack, ResourceGraph, parallel_with, start_context

pytestmark = pytest.mark.runtimes


class Raises:
    """A plain class (not ``@asynccontextmanager``) whose ``__aexit__`` raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.seen: BaseException | None = None

    async def __aenter__(self) -> None:
        pass

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.seen = exc
        raise self.error


def raise_nested(inner: BaseException, outer: BaseException) -> None:
    try:
        raise inner
    finally:
        raise outer


class RaisesNested:
    """``__aexit__`` raises ``outer`` while ``inner`` propagates (CPython's ``raise_nested``)."""

    def __init__(self, inner: BaseException, outer: BaseException) -> None:
        self.inner, self.outer = inner, outer
        self.seen: BaseException | None = None

    async def __aenter__(self) -> None:
        pass

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.seen = exc
        raise_nested(self.inner, self.outer)
        return False  # pragma: no cover


class Suppresses:
    def __init__(self) -> None:
        self.seen: BaseException | None = None

    async def __aenter__(self) -> None:
        pass

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.seen = exc
        return True


def chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and its ``__context__`` chain (failing the test on a cycle)."""
    found: list[BaseException] = []
    while exc is not None:
        assert all(exc is not seen for seen in found), "a cycle in the __context__ chain"
        found.append(exc)
        exc = exc.__context__
    return found


def frames(tb: TracebackType | None) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(tb)]


async def nested_reference(error: BaseException, body: BaseException) -> BaseException:
    """What ``async with Raises(error): raise body`` raises: the interpreter's answer."""
    try:
        async with Raises(error):
            raise body
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")  # pragma: no cover


async def test_an_exit_failure_has_the_body_exception_as_context_as_nested_blocks_give() -> None:
    reference = await nested_reference(KeyError("cleanup"), ZeroDivisionError("body"))
    assert [type(e) for e in chain(reference)] == [KeyError, ZeroDivisionError]

    body = ZeroDivisionError("body")
    first, second = Raises(KeyError("a")), Raises(KeyError("b"))
    with pytest.RaisesGroup(ZeroDivisionError, KeyError, KeyError) as caught:
        async with parallel_with(first, second):
            raise body
    body_member, *failures = members(caught.value)
    assert body_member is body
    # Each concurrent exit's failure chains to the very object the body raised.
    assert [chain(f) for f in failures] == [[first.error, body], [second.error, body]]
    assert first.seen is second.seen is body


async def test_the_delivered_exception_is_left_untouched() -> None:
    body = ZeroDivisionError("body")
    cms = [Raises(KeyError(n)) for n in range(3)]
    seen_frames: list[str] = []
    seen_tb: TracebackType | None = None
    with pytest.RaisesGroup(ZeroDivisionError, KeyError, KeyError, KeyError):
        async with parallel_with(*cms):
            try:
                raise body
            finally:
                seen_frames = frames(body.__traceback__)
                seen_tb = body.__traceback__
    # Neither a holder's frame in its traceback nor a context or cause of its own.
    assert frames(body.__traceback__) == seen_frames
    assert body.__traceback__ is seen_tb
    assert body.__context__ is None
    assert body.__cause__ is None
    # And as the group's member it chains to nothing: the group is not its context.
    assert chain(body) == [body]


async def test_an_exit_reraising_what_it_received_does_not_make_it_its_own_context() -> None:
    body = ZeroDivisionError("body")

    class Reraises:
        async def __aenter__(self) -> None:
            pass

        async def __aexit__(
            self,
            kind: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> bool:
            assert exc is not None
            raise exc

    with pytest.RaisesGroup(ZeroDivisionError) as caught:
        async with parallel_with(Reraises(), Reraises()):
            raise body
    # Re-raising is letting it through, not a second failure; nothing points at itself.
    assert members(caught.value) == [body]
    assert chain(body) == [body]


async def test_an_enter_failure_is_the_context_of_the_exits_it_causes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    entered = Raises(KeyError("cleanup"))
    failing = FakeCM("b", log, enter_delay=1, enter_error=OSError("refused"))
    # Nested: `async with entered, failing:` passes the OSError to entered.__aexit__.
    with pytest.RaisesGroup(OSError, KeyError) as caught:
        async with parallel_with(entered, failing):
            pytest.fail("the body ran")  # pragma: no cover
    [refused, cleanup] = sorted(members(caught.value), key=lambda e: type(e).__name__ != "OSError")
    assert entered.seen is refused
    assert chain(cleanup) == [cleanup, refused]


async def test_a_failure_while_open_is_the_context_of_the_other_exits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    other = Raises(KeyError("cleanup"))
    with pytest.RaisesGroup(pytest.RaisesGroup(ValueError), KeyError) as caught:
        async with parallel_with(crashes_while_open(log, "c", 1, ValueError("crash")), other):
            await rt.sleep_forever()
    crash, cleanup = members(caught.value)
    assert other.seen is crash
    assert chain(cleanup) == [cleanup, *chain(crash)]
    # The crash's own context: none from Trio's nursery; anyio's task group raises its group
    # while handling the CancelledError it cancelled its host with, in nested blocks too.
    assert [type(e) for e in chain(crash)[1:]] == ([] if rt.on_trio() else [rt.cancelled()])


async def test_an_outer_cancellation_is_the_context_of_an_exit_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cm = Raises(KeyError("cleanup"))
    with pytest.RaisesGroup(KeyError) as caught:
        with rt.move_on_after(1):  # takes its Cancelled out of the group
            async with parallel_with(cm):
                await rt.sleep_forever()
    [cleanup] = members(caught.value)
    # As nested: the Cancelled its own task met is what it was handling.
    assert isinstance(cm.seen, rt.cancelled())
    assert chain(cleanup) == [cleanup, cm.seen]


async def test_a_handle_aexit_exception_is_the_context_of_its_exit_failure() -> None:
    given = ZeroDivisionError("given")
    cm = Raises(KeyError("cleanup"))
    async with rt.open_nursery() as nursery:
        handle = await start_context(nursery, cm)
        with pytest.RaisesGroup(KeyError) as caught:
            await handle.aexit(given)
    [cleanup] = members(caught.value)
    assert chain(cleanup) == [cleanup, given]
    assert given.__traceback__ is None and given.__context__ is None


@asynccontextmanager
async def explicit_none_context() -> AsyncGenerator[None, None]:
    try:
        yield
    except BaseException:
        exc = LookupError("mine")
        try:
            raise exc
        finally:
            exc.__context__ = None


class ExplicitNoneContext:
    def __init__(self) -> None:
        self.seen: BaseException | None = None

    async def __aenter__(self) -> None:
        pass

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.seen = exc
        error = LookupError("mine")
        try:
            raise error
        finally:
            error.__context__ = None


@pytest.mark.parametrize("make", [explicit_none_context, ExplicitNoneContext])
async def test_an_explicit_none_context_is_kept(make: Callable[[], Any]) -> None:
    # test_exit_exception_explicit_none_context
    with pytest.RaisesGroup(IndexError, LookupError) as caught:
        async with parallel_with(make()):
            raise IndexError
    _, mine = members(caught.value)
    assert mine.__context__ is None


async def test_an_existing_context_is_kept() -> None:
    # test_exit_exception_with_existing_context, one context manager per stage, with the
    # body raising nothing (see the next test for the body's exception).
    exc2, exc3, exc4, exc5 = (Exception(n) for n in range(2, 6))
    with pytest.RaisesGroup(Exception, Exception) as caught:
        async with ParallelExitStack() as stack:
            await stack.enter(RaisesNested(exc4, exc5))
            await stack.enter(RaisesNested(exc2, exc3))
    assert members(caught.value) == [exc5, exc3]  # stage order
    assert chain(exc5) == [exc5, exc4, exc3, exc2]


# ---- CPython's chaining family, replayed ------------------------------------------------
#
# Each case of Lib/test/test_contextlib_async.py (``test_async_exit_exception_chaining*``,
# ``..._with_correct_context``, ``..._with_existing_context``, ``..._explicit_none_context``)
# runs four ways: nested ``async with`` (the interpreter), ``contextlib.AsyncExitStack``,
# a ``ParallelExitStack`` with one context manager per stage, and a chain
# ``ResourceGraph``.  Every context manager must receive the same exception, and what
# leaves must chain the same way; ours leave as one group, whose members are the failures
# nothing suppressed, the outermost of which chains exactly as the reference.


class Labelled(Exception):
    """An exception compared across runs by its label."""


Case = Callable[[], tuple[list[Any], BaseException | None]]


def _chaining_reference() -> tuple[list[Any], BaseException | None]:
    # IndexError / KeyError-over-AttributeError / suppress / ValueError, body 1 / 0.
    cms = [
        Raises(Labelled("index")),
        RaisesNested(Labelled("attribute"), Labelled("key")),
        Suppresses(),
        Raises(Labelled("value")),
    ]
    return cms, Labelled("division")


def _chaining_suppress() -> tuple[list[Any], BaseException | None]:
    # test_async_exit_exception_chaining_suppress: nothing in the body.
    return [Raises(Labelled("index")), Suppresses(), Raises(Labelled("key"))], None


def _with_correct_context() -> tuple[list[Any], BaseException | None]:
    @asynccontextmanager
    async def gets_the_context_right(exc: BaseException) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            raise exc

    labels = ("4", "3", "2")
    return [gets_the_context_right(Labelled(n)) for n in labels], Labelled("1")


def _with_existing_context() -> tuple[list[Any], BaseException | None]:
    cms = [
        RaisesNested(Labelled("4"), Labelled("5")),
        RaisesNested(Labelled("2"), Labelled("3")),
    ]
    return cms, Labelled("1")


def _explicit_none_context() -> tuple[list[Any], BaseException | None]:
    return [ExplicitNoneContext(), Raises(Labelled("inner"))], Labelled("index")


CASES: dict[str, Case] = {
    "chaining_reference": _chaining_reference,
    "chaining_suppress": _chaining_suppress,
    "with_correct_context": _with_correct_context,
    "with_existing_context": _with_existing_context,
    "explicit_none_context": _explicit_none_context,
}


def label(exc: BaseException | None) -> str | None:
    return None if exc is None else f"{type(exc).__name__}({exc})"


def labels(exc: BaseException | None) -> list[str | None]:
    return [label(e) for e in chain(exc)]


async def _nested(cms: list[Any], body: BaseException | None) -> None:
    if not cms:
        if body is not None:
            raise body
        return
    async with cms[0]:
        await _nested(cms[1:], body)


async def _exit_stack(cms: list[Any], body: BaseException | None) -> None:
    async with AsyncExitStack() as stack:
        for cm in cms:
            await stack.enter_async_context(cm)
        if body is not None:
            raise body


async def _stages(cms: list[Any], body: BaseException | None) -> None:
    async with ParallelExitStack() as stack:
        for cm in cms:
            await stack.enter(cm)
        if body is not None:
            raise body


async def _chain_graph(cms: list[Any], body: BaseException | None) -> None:
    def returning(cm: Any) -> Callable[..., Any]:
        return lambda *_: cm

    graph = ResourceGraph()
    node = graph.add(returning(cms[0]))
    for cm in cms[1:]:
        node = graph.add(returning(cm), node)
    async with graph:
        if body is not None:
            raise body


async def _outcome(
    run: Callable[[list[Any], BaseException | None], Any], case: Case
) -> tuple[list[str | None], BaseException | None]:
    """What each context manager received, outermost first, and what left the block."""
    cms, body = case()
    raised: BaseException | None = None
    try:
        await run(cms, body)
    except BaseException as exc:
        raised = exc
    return [label(getattr(cm, "seen", None)) for cm in cms], raised


@pytest.mark.parametrize("runner", [_stages, _chain_graph], ids=["stages", "chain-graph"])
@pytest.mark.parametrize("name", list(CASES))
async def test_cpython_chaining_family_as_nested_blocks_give_it(
    name: str, runner: Callable[[list[Any], BaseException | None], Any]
) -> None:
    case = CASES[name]
    nested_seen, nested = await _outcome(_nested, case)
    stack_seen, stack = await _outcome(_exit_stack, case)
    # The reference agrees with itself: the interpreter and AsyncExitStack.
    assert stack_seen == nested_seen
    assert labels(stack) == labels(nested)
    ours_seen, ours = await _outcome(runner, case)
    assert ours_seen == nested_seen  # each __aexit__ received the same (never a group)
    if nested is None:
        assert ours is None
        return
    failures = members(ours)
    # The outermost failure (the earliest stage's) chains exactly as nested blocks chain.
    outermost = next(f for f in reversed(failures) if labels(f) == labels(nested))
    assert labels(outermost) == labels(nested)
    # Nothing in the group that nested blocks did not raise or pass along: the chain, and
    # what a context manager received (a superseded exception nothing suppressed stays).
    assert {label(f) for f in failures} <= set(labels(nested)) | set(nested_seen)


async def test_a_suppressing_stage_suppresses_what_the_newest_exception_superseded() -> None:
    # test_async_exit_exception_chaining, one context manager per stage: the suppressing
    # stage receives the ValueError alone (its context the ZeroDivisionError), and
    # suppressing it suppresses both.
    index, key, attribute = IndexError(), KeyError(), AttributeError()
    value, suppresses = ValueError(), Suppresses()
    with pytest.RaisesGroup(KeyError, IndexError) as caught:
        async with ParallelExitStack() as stack:
            await stack.enter(Raises(index))
            await stack.enter(RaisesNested(attribute, key))
            await stack.enter(suppresses)
            await stack.enter(Raises(value))
            _ = 1 / 0
    assert members(caught.value) == [index, key]  # stage order; nothing suppressed is lost
    assert chain(index) == [index, key, attribute]
    assert suppresses.seen is value
    assert [type(e) for e in chain(value)] == [ValueError, ZeroDivisionError]


async def test_an_earlier_stage_receives_the_newest_and_the_group_keeps_the_rest() -> None:
    # test_async_exit_exception_with_existing_context, with the body raising exc1: stage 1
    # receives exc3 alone (exc2 and exc1 reachable through its __context__), and every
    # failure nothing suppressed leaves in the group, the body's first.
    exc1, exc2, exc3, exc4, exc5 = (Exception(n) for n in range(1, 6))
    outer = RaisesNested(exc4, exc5)
    with pytest.RaisesGroup(Exception, Exception, Exception) as caught:
        async with ParallelExitStack() as stack:
            await stack.enter(outer)
            await stack.enter(RaisesNested(exc2, exc3))
            raise exc1
    assert members(caught.value) == [exc1, exc5, exc3]
    assert chain(exc5) == [exc5, exc4, exc3, exc2, exc1]


@asynccontextmanager
async def catches_key_error(log: list[str]) -> AsyncGenerator[None, None]:
    try:
        yield
    except KeyError:
        log.append("caught the KeyError")


async def test_an_asynccontextmanager_catches_the_newest_by_its_type() -> None:
    # Under nested blocks `except KeyError:` around the yield catches a later stage's
    # KeyError; it must be thrown the KeyError itself, not a group holding it.
    log: list[str] = []
    later = Raises(KeyError("later"))
    async with ParallelExitStack() as stack:
        await stack.enter(catches_key_error(log))
        await stack.enter(later)
        raise ZeroDivisionError
    # As nested: catching the KeyError suppresses what it superseded, the body's too.
    assert log == ["caught the KeyError"]
    assert isinstance(later.seen, ZeroDivisionError)


async def test_the_chaining_frame_holds_no_reference_to_the_failure() -> None:
    # The failure's traceback holds the frame that called __aexit__: if that frame held the
    # failure, they would form a reference cycle, left for the garbage collector.
    cm = Raises(KeyError("cleanup"))
    with pytest.RaisesGroup(ZeroDivisionError, KeyError):
        async with parallel_with(cm):
            raise ZeroDivisionError
    tb = cm.error.__traceback__
    callers: list[FrameType] = []
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "call_aexit":
            callers.append(tb.tb_frame)
        tb = tb.tb_next
    assert len(callers) == 1
    assert not any(referent is cm.error for referent in gc.get_referents(callers[0]))
    assert all(value is not cm.error for value in callers[0].f_locals.values())
