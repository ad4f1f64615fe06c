"""``format_failures``: one readable report of any exception.

Each async test runs on Trio and on asyncio (``tests/runtime.py``).
"""

from __future__ import annotations

import re

import pytest
import trio
import trio.testing

from tests import runtime as rt
from tests.examples import example_main, expected_output
from tests.fakes import FakeCM, Log, members
from trio_parallel_cm import (
    ParallelExitStack,
    ResourceGraph,
    Retry,
    format_failures,
    parallel_with,
)

pytestmark = pytest.mark.runtimes


@pytest.mark.trio_only(reason="the documented example is Trio code (trio.sleep, trio.run)")
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
    connect.__notes__ = ["while opening the pool"]
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


# ---- a retried node's failure: attempts that failed alike, once (issue 16) -----------------


def refused(port: int) -> OSError:
    """A connection error caused by a refusal, as ``trio.open_tcp_stream`` raises them."""
    error = OSError("all attempts to connect failed")
    error.__cause__ = ConnectionRefusedError(f"port {port} refused")
    return error


class Refusing:
    """A context manager whose ``__aenter__`` raises ``OSError("refused")``, from here."""

    async def __aenter__(self) -> None:
        raise OSError("refused")

    async def __aexit__(self, *exc_info: object) -> None: ...


class Attempts:
    """A node's factory: attempt N enters the N-th of ``scripts``.

    An exception: a ``FakeCM`` that raises it; None: one that hangs until the node's
    enter timeout; else that context manager.
    """

    def __init__(self, *scripts: BaseException | Refusing | None) -> None:
        self.scripts = list(scripts)
        self.log: Log = []

    def __call__(self) -> FakeCM | Refusing:
        script = self.scripts.pop(0)
        if isinstance(script, Refusing):
            return script
        return FakeCM("conn", self.log, enter_delay=60 if script is None else 0, enter_error=script)


def graph_of_attempts(*scripts: BaseException | Refusing | None, optional: bool) -> ResourceGraph:
    """One node, ``conn``: one attempt per script, 0.1 s apart, all within 1 s."""
    graph = ResourceGraph()
    retry = Retry(attempts=len(scripts), backoff=0.1, multiplier=1)
    graph.add(Attempts(*scripts), retry=retry, enter_timeout=1, optional=optional, name="conn")
    return graph


async def report_of_attempts(
    *scripts: BaseException | Refusing | None, tracebacks: bool = False
) -> str:
    """The report of the tolerated failure of an optional node (``graph_of_attempts``)."""
    async with graph_of_attempts(*scripts, optional=True) as resources:
        pass
    return located(format_failures(resources.failures, tracebacks=tracebacks))


def located(report: str) -> str:
    """``report`` with the fakes' line numbers left out (they are not the point)."""
    return re.sub(r" \[fakes\.py:\d+ in __aenter__\]", " [fakes.py]", report)


async def test_attempts_that_failed_alike_are_shown_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = graph_of_attempts(refused(1), refused(1), refused(1), optional=False)
    attempts = pytest.RaisesGroup(OSError, OSError, OSError, match="^3 attempts failed")
    with pytest.RaisesGroup(attempts) as caught:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    assert located(format_failures(caught.value)).splitlines() == [
        "1 of 1 context manager failed (1 entering)",
        "  - conn (position 0) failed while entering after 0.200 s: 3 attempts failed alike: "
        "OSError: all attempts to connect failed [fakes.py]",
        "    caused by: ConnectionRefusedError: port 1 refused",
    ]
    # Their tracebacks are the same (but for the library's frames): shown once.
    full = format_failures(caught.value, tracebacks=True)
    assert full.count("Traceback of") == 1
    assert (
        "\n\nTraceback of attempts 1-3 of conn (position 0) failed while entering after "
        "0.200 s: OSError: all attempts to connect failed:\n"
    ) in full
    # The group itself is as it was: every attempt's exception, in order.
    [group] = members(caught.value)
    assert [str(e.__cause__) for e in members(group)] == ["port 1 refused"] * 3


async def test_attempts_that_differ_are_each_shown_numbered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report = await report_of_attempts(OSError("refused 1"), OSError("refused 2"), KeyError(3))
    assert report.splitlines() == [
        "conn (position 0) failed while entering after 0.200 s: 3 attempts failed",
        "  - attempt 1: OSError: refused 1 [fakes.py]",
        "  - attempt 2: OSError: refused 2 [fakes.py]",
        "  - attempt 3: KeyError: 3 [fakes.py]",
    ]


async def test_a_mix_shows_each_kind_of_failure_once_with_its_attempts_numbers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scripts = (refused(1), ConnectionResetError("reset"), refused(1), refused(1), None)
    report = await report_of_attempts(*scripts, tracebacks=True)
    summary, *tracebacks = report.split("\n\n")
    # The enter timeout is trio.TooSlowError on Trio, the builtin TimeoutError on asyncio.
    too_slow = "trio.TooSlowError" if rt.on_trio() else "TimeoutError"
    assert summary.splitlines() == [
        "conn (position 0) failed while entering after 1.000 s: 5 attempts failed",
        "  - attempts 1, 3, 4 alike: OSError: all attempts to connect failed [fakes.py]",
        "    caused by: ConnectionRefusedError: port 1 refused",
        "  - attempt 2: ConnectionResetError: reset [fakes.py]",
        f"  - attempt 5: {too_slow}: conn did not enter within 1 s",
    ]
    who = "of conn (position 0) failed while entering after 1.000 s"
    titles = [part.splitlines()[0] for part in tracebacks if part.startswith("Traceback of")]
    assert titles == [
        f"Traceback of attempts 1, 3, 4 {who}: OSError: all attempts to connect failed:",
        f"Traceback of attempt 2 {who}: ConnectionResetError: reset:",
        f"Traceback of attempt 5 {who}: {too_slow}: conn did not enter within 1 s:",
    ]


async def test_attempts_with_the_same_message_but_different_causes_are_not_alike(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report = await report_of_attempts(refused(1), refused(2), refused(2))
    assert report.splitlines() == [
        "conn (position 0) failed while entering after 0.200 s: 3 attempts failed",
        "  - attempt 1: OSError: all attempts to connect failed [fakes.py]",
        "    caused by: ConnectionRefusedError: port 1 refused",
        "  - attempts 2, 3 alike: OSError: all attempts to connect failed [fakes.py]",
        "    caused by: ConnectionRefusedError: port 2 refused",
    ]


def with_context(context: BaseException, *, suppressed: bool, note: str = "") -> OSError:
    """``OSError("refused")`` raised while handling ``context`` (``from None`` if
    ``suppressed``), with ``note``."""
    error = OSError("refused")
    error.__context__, error.__suppress_context__ = context, suppressed
    if note:
        error.__notes__ = [note]
    return error


async def test_alike_compares_what_the_report_shows_of_the_chain_and_notes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A context that `raise ... from None` suppressed is not shown: it is not compared.
    report = await report_of_attempts(
        with_context(KeyError("a"), suppressed=True),
        with_context(KeyError("b"), suppressed=True),
        with_context(KeyError("b"), suppressed=False),
        with_context(KeyError("b"), suppressed=False, note="the second pool"),
    )
    assert report.splitlines() == [
        "conn (position 0) failed while entering after 0.300 s: 4 attempts failed",
        "  - attempts 1, 2 alike: OSError: refused [fakes.py]",
        "  - attempt 3: OSError: refused [fakes.py]",
        "    while handling: KeyError: 'b'",
        "  - attempt 4: OSError: refused [fakes.py]",
        "    note: the second pool",
        "    while handling: KeyError: 'b'",
    ]


async def test_alike_attempts_raised_through_different_frames_show_each_traceback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    report = await report_of_attempts(
        OSError("refused"), Refusing(), OSError("refused"), tracebacks=True
    )
    summary, *tracebacks = report.split("\n\n")
    assert summary == (
        "conn (position 0) failed while entering after 0.200 s: "
        "3 attempts failed alike: OSError: refused [fakes.py]"
    )
    titles = [part.splitlines()[0].split(" of conn")[0] for part in tracebacks]
    assert titles == ["Traceback of attempts 1, 3", "Traceback of attempt 2"]
    assert 'raise OSError("refused")' in tracebacks[1]


def is_refusal(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and str(exc) == "refused"


async def test_a_group_split_from_the_attempts_reads_as_any_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A part of a retried node's failure is not all its attempts: shown as it is.
    graph = graph_of_attempts(OSError("refused"), OSError("refused"), None, optional=False)
    with pytest.RaisesGroup(pytest.RaisesGroup(OSError, OSError, rt.too_slow())) as caught:
        async with graph:
            pytest.fail("the body ran")  # pragma: no cover
    # (On asyncio the timeout, TimeoutError, is an OSError too: the refusals by message.)
    part = caught.value.subgroup(is_refusal)
    assert part is not None
    assert located(format_failures(part)).splitlines()[1:] == [
        "  - conn (position 0) failed while entering after 1.000 s: "
        "ExceptionGroup: 3 attempts failed (2 sub-exceptions)",
        "    - OSError: refused [fakes.py]",
        "    - OSError: refused [fakes.py]",
    ]


async def test_attempts_that_are_groups_are_alike_only_if_their_members_are(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def refusals(*ports: int) -> ExceptionGroup[OSError]:
        return ExceptionGroup("connect failed", [ConnectionRefusedError(p) for p in ports])

    report = await report_of_attempts(refusals(1), refusals(2), refusals(2))
    assert report.splitlines() == [
        "conn (position 0) failed while entering after 0.200 s: 3 attempts failed",
        "  - attempt 1: ExceptionGroup: connect failed (1 sub-exception) [fakes.py]",
        "    - ConnectionRefusedError: 1",
        "  - attempts 2, 3 alike: ExceptionGroup: connect failed (1 sub-exception) [fakes.py]",
        "    - ConnectionRefusedError: 2",
    ]


async def test_a_chain_that_loops_is_compared_once_around(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def looping() -> OSError:
        error, cause = OSError("refused"), KeyError("pool")
        error.__cause__, cause.__cause__ = cause, error
        return error

    report = await report_of_attempts(looping(), looping())
    assert report.splitlines() == [
        "conn (position 0) failed while entering after 0.100 s: "
        "2 attempts failed alike: OSError: refused [fakes.py]",
        "  caused by: KeyError: 'pool'",
        "    caused by: OSError (shown above)",
    ]


async def test_a_group_that_only_looks_like_attempts_is_not_condensed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Only the engine's own failure of a retried node is read as attempts, not a group an
    # __aenter__ raised with the same message and shape.
    log: Log = []
    lookalike = ExceptionGroup("2 attempts failed", [OSError("down"), OSError("down")])
    with pytest.RaisesGroup(pytest.RaisesGroup(OSError, OSError)) as caught:
        async with parallel_with(FakeCM("cm", log, enter_error=lookalike)):
            pass  # pragma: no cover
    report = format_failures(caught.value)
    assert "alike" not in report
    assert report.count("OSError: down") == 2


def test_a_long_message_is_shortened_in_its_middle() -> None:
    # anyio's cancellations name the task that cancelled, with its coroutine: the report
    # keeps a line's start and its end (a reason comes last).
    long = "Cancelled via cancel scope 7f by <Task " + "x" * 300 + ">; reason: deadline exceeded"
    report = format_failures(ValueError(long))
    line = report.splitlines()[0]
    assert line.startswith("ValueError: Cancelled via cancel scope 7f by <Task xxx")
    assert line.endswith("xxx>; reason: deadline exceeded")
    assert " ... " in line and len(line) < len("ValueError: ") + 161
