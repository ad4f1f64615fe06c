"""``format_failures``: one readable report of any exception."""

from __future__ import annotations

import sys

import pytest
import trio
import trio.testing

from tests.examples import example_main, expected_output
from tests.fakes import FakeCM, Log
from trio_parallel_cm import ParallelExitStack, format_failures, parallel_with

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


async def test_the_documented_example_prints_the_documented_report(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    await example_main("report")()
    assert capsys.readouterr().out == expected_output("report")


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as if raised here."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_bare_exception_is_one_line_with_its_location() -> None:
    report = format_failures(raised(ValueError("bad value")))
    assert report.startswith("ValueError: bad value [test_report.py:")
    assert report.count("\n") == 0


def test_chains_notes_and_nested_groups_each_appear_once() -> None:
    root = raised(KeyError("root cause"))
    try:
        raise OSError("connect failed") from root
    except OSError as exc:
        connect = exc
    # What add_note does, on 3.10 too.
    connect.__notes__ = ["while opening the pool"]  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    inner = BaseExceptionGroup("inner", [connect, root])
    outer = BaseExceptionGroup("outer", [inner, ValueError("plain")])
    lines = format_failures(outer).splitlines()
    assert lines[0] == "ExceptionGroup: outer (2 sub-exceptions)"
    assert lines[1] == "  - ExceptionGroup: inner (2 sub-exceptions)"
    assert lines[2].startswith("    - OSError: connect failed [test_report.py:")
    assert lines[3] == "      note: while opening the pool"
    assert lines[4].startswith("      caused by: KeyError: 'root cause' [test_report.py:")
    assert lines[-2] == "    - KeyError (shown above)"
    assert lines[-1] == "  - ValueError: plain"


async def test_tracebacks_follow_the_summary_on_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    with pytest.RaisesGroup(KeyError, OSError) as caught:
        async with parallel_with(FakeCM("a", log, exit_error=OSError("down"))):
            raise KeyError("body")
    short = format_failures(caught.value)
    full = format_failures(caught.value, tracebacks=True)
    assert full.startswith(short + "\n\n")
    assert "Traceback of body raised after 0.000 s: KeyError: 'body':" in full
    assert "Traceback of FakeCM (position 0) failed while exiting after 0.000 s" in full
    assert 'raise KeyError("body")' in full
    assert short.splitlines()[0] == "the body raised; 1 of 1 context manager failed (1 exiting)"


async def test_nested_stack_failures_and_multiline_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: Log = []
    with pytest.RaisesGroup(OSError) as caught:
        async with ParallelExitStack() as stack:
            await stack.enter(FakeCM("db", log))
            await stack.enter(FakeCM("app", log, exit_error=OSError("line one\nline two")))
    [line] = format_failures(caught.value).splitlines()[1:]
    assert line.startswith(
        "  - FakeCM (stage 2, position 0) failed while exiting after 0.000 s: "
        "OSError: line one ... [fakes.py:"
    )
    # A failure shown in a group and again in a full report's tracebacks appears once each.
    full = format_failures(
        BaseExceptionGroup("twice", [caught.value, caught.value]), tracebacks=True
    )
    assert full.count("Traceback of FakeCM (stage 2, position 0)") == 1
