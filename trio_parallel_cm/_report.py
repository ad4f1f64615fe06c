"""``format_failures``: one readable report of any exception, for logs and terminals."""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from ._attempts import alike_classes, attempts_message, attempts_of, label, members_of
from ._errors import ContextFailure, ParallelBaseExceptionGroup, failure_note, record_of

INDENT = "  "


def format_failures(
    exc: BaseException | Iterable[ContextFailure], *, tracebacks: bool = False
) -> str:
    """Render ``exc`` (one of our groups, any group, a chain, a bare exception) as a report.

    ``exc`` may also be failure records, such as the tolerated failures of a graph's
    optional nodes (``resources.failures``): each is rendered in turn.

    One line per failure: which context manager (or the body), the phase, when (seconds
    since the block started, on the event loop's clock), the exception's type and message
    (its first line, shortened in the middle beyond 160 characters), and the short
    location where it was raised.  Members of nested groups are indented below
    their group; ``__cause__`` and ``__context__`` follow as ``caused by:`` and ``while
    handling:`` lines; other notes as ``note:`` lines.  No exception is shown twice: a
    second sighting says ``(shown above)``.

    The failure of a :class:`ResourceGraph` node whose every attempt failed (a group of
    the attempts' exceptions, see :class:`Retry`) shows attempts that failed alike once:
    ``3 attempts failed alike: OSError: ...`` and that attempt's chain, when all did;
    else ``3 attempts failed``, then one line per kind of failure, numbered
    (``attempts 1, 2 alike: OSError: ...``, ``attempt 3: trio.TooSlowError: ...``).
    Alike means what the report would show of them, where and when aside: the same type,
    message and notes, and alike chains and group members (see :doc:`semantics`,
    "Retries").

    Args:
        exc: any exception.
        tracebacks: append the full traceback of each failure after the summary (of a
            retried node's attempts, each distinct traceback once).

    Returns:
        The report, lines separated by ``"\\n"``, with no final newline.

    Example::

        except* OSError as group:
            log.error("start-up failed:\\n%s", format_failures(group))
    """
    if not isinstance(exc, BaseException):
        reports = (format_failures(record.exception, tracebacks=tracebacks) for record in exc)
        return "\n".join(reports)
    lines: list[str] = []
    seen: set[int] = set()
    _format(exc, 0, "", None, lines, seen)
    if tracebacks:
        shown: set[int] = set()
        for member, title in _traces(exc):
            if id(member) in shown:
                continue
            shown.add(id(member))
            lines.append("")
            lines.append(f"Traceback of {title}:")
            text = "".join(traceback.format_exception(member)).rstrip("\n")
            lines.extend(INDENT + line for line in text.splitlines())
    return "\n".join(lines)


def _format(
    exc: BaseException,
    depth: int,
    prefix: str,
    record: ContextFailure | None,
    lines: list[str],
    seen: set[int],
) -> None:
    indent = INDENT * depth
    if id(exc) in seen:
        lines.append(f"{indent}{prefix}{_type_name(exc)} (shown above)")
        return
    seen.add(id(exc))
    record = record or record_of(exc)
    own_note = None
    if record is not None and record.position is not None:
        own_note = failure_note(record.name, record.position, record.phase, record.stage)
    if isinstance(exc, ParallelBaseExceptionGroup):
        # A nested block that failed as a context manager is named like any failure.
        line = exc.message if record is None else f"{_who(record)}: {exc.message}"
        lines.append(f"{indent}{prefix}{line}")
        by_exception = {id(r.exception): r for r in exc.failures}
        for member in exc.exceptions:
            member_record: ContextFailure | None = by_exception.get(id(member))
            _format(member, depth + 1, "- ", member_record, lines, seen)
    elif (attempts := attempts_of(exc)) is not None:
        assert record is not None  # (a retried node's failure has one)
        _format_attempts(attempts, depth, f"{prefix}{_who(record)}: ", lines, seen)
    else:
        line = f"{indent}{prefix}{_headline(exc, record)}"
        location = _location(exc)
        lines.append(f"{line} [{location}]" if location else line)
        if isinstance(exc, BaseExceptionGroup):
            for member in exc.exceptions:  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
                _format(member, depth + 1, "- ", None, lines, seen)  # pyright: ignore[reportUnknownArgumentType]
    notes: list[str] = getattr(exc, "__notes__", None) or []  # pyright: ignore[reportUnknownArgumentType]
    lines.extend(f"{indent}{INDENT}note: {note}" for note in notes if note != own_note)
    if exc.__cause__ is not None:
        _format(exc.__cause__, depth + 1, "caused by: ", None, lines, seen)
    elif exc.__context__ is not None and not exc.__suppress_context__:
        _format(exc.__context__, depth + 1, "while handling: ", None, lines, seen)


def _format_attempts(
    attempts: tuple[BaseException, ...],
    depth: int,
    prefix: str,
    lines: list[str],
    seen: set[int],
) -> None:
    """A retried node's failure: attempts that failed alike once, the others numbered."""
    head = f"{prefix}{attempts_message(len(attempts))}"
    classes = alike_classes(attempts)
    if len(classes) == 1:
        _format(attempts[0], depth, f"{head} alike: ", None, lines, seen)
        return
    lines.append(f"{INDENT * depth}{head}")
    for numbers in classes:
        _format(attempts[numbers[0] - 1], depth + 1, f"- {label(numbers)}: ", None, lines, seen)


def _headline(exc: BaseException, record: ContextFailure | None) -> str:
    described = f"{_type_name(exc)}: {_message(exc)}" if str(exc) else _type_name(exc)
    return described if record is None else f"{_who(record)}: {described}"


def _who(record: ContextFailure) -> str:
    """Who failed, in which phase, and when."""
    when = f"{record.elapsed:.3f} s"
    if record.position is None:
        return f"body raised after {when}"
    where = f"position {record.position}"
    if record.stage is not None:
        where = f"stage {record.stage}, {where}"
    return f"{record.name} ({where}) failed while {record.phase} after {when}"


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__", "exceptiongroup"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


#: A message longer than this is shortened in its middle (anyio's cancellations name
#: the task that cancelled, with its whole coroutine): its start and its end stay.
LONGEST_MESSAGE: Final = 160


def _message(exc: BaseException) -> str:
    text = str(exc)
    first, *rest = text.splitlines() or [""]
    if len(first) > LONGEST_MESSAGE:
        half = LONGEST_MESSAGE // 2 - 3
        first = f"{first[:half]} ... {first[-half:]}"
    return f"{first} ..." if rest else first


def _location(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{Path(code.co_filename).name}:{tb.tb_lineno} in {code.co_name}"


def _traces(exc: BaseException) -> list[tuple[BaseException, str]]:
    """The failures whose tracebacks a full report shows (the members of our groups),
    each with its title."""
    if isinstance(exc, ParallelBaseExceptionGroup):
        by_exception = {id(r.exception): r for r in exc.failures}
        return [t for m in exc.exceptions for t in _traces_of(m, by_exception.get(id(m)))]
    if attempts_of(exc) is None and (members := members_of(exc)):
        return [found for member in members for found in _traces(member)]
    return _traces_of(exc, record_of(exc))


def _traces_of(
    exc: BaseException, record: ContextFailure | None
) -> list[tuple[BaseException, str]]:
    """The traceback of one failure; of a retried node's, each distinct one once."""
    attempts = attempts_of(exc)
    if attempts is None:
        return [(exc, _headline(exc, record))]
    assert record is not None  # (a retried node's failure has one)
    return [
        (first, f"{label(numbers, alike=False)} of {_who(record)}: {_headline(first, None)}")
        for numbers in alike_classes(attempts, frames=True)
        for first in [attempts[numbers[0] - 1]]
    ]
