"""``format_failures``: one readable report of any exception, for logs and terminals."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from ._errors import ContextFailure, ParallelBaseExceptionGroup, failure_note, record_of

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

INDENT = "  "


def format_failures(
    exc: BaseException | Iterable[ContextFailure], *, tracebacks: bool = False
) -> str:
    """Render ``exc`` (one of our groups, any group, a chain, a bare exception) as a report.

    ``exc`` may also be failure records, such as the tolerated failures of a graph's
    optional nodes (``resources.failures``): each is rendered in turn.

    One line per failure: which context manager (or the body), the phase, when (seconds
    since the block started, on Trio's clock), the exception's type and message, and the
    short location where it was raised.  Members of nested groups are indented below
    their group; ``__cause__`` and ``__context__`` follow as ``caused by:`` and ``while
    handling:`` lines; other notes as ``note:`` lines.  No exception is shown twice: a
    second sighting says ``(shown above)``.

    Args:
        exc: any exception.
        tracebacks: append the full traceback of each failure after the summary.

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
        for member, record in _leaves_to_trace(exc):
            if id(member) in shown:
                continue
            shown.add(id(member))
            lines.append("")
            lines.append(f"Traceback of {_headline(member, record)}:")
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


def _message(exc: BaseException) -> str:
    text = str(exc)
    first, *rest = text.splitlines() or [""]
    return f"{first} ..." if rest else first


def _location(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{Path(code.co_filename).name}:{tb.tb_lineno} in {code.co_name}"


def _leaves_to_trace(
    exc: BaseException,
) -> list[tuple[BaseException, ContextFailure | None]]:
    """The failures whose tracebacks a full report shows (the members of our groups)."""
    if isinstance(exc, ParallelBaseExceptionGroup):
        by_exception = {id(r.exception): r for r in exc.failures}
        return [(m, by_exception.get(id(m))) for m in exc.exceptions]
    if isinstance(exc, BaseExceptionGroup):
        found: list[tuple[BaseException, ContextFailure | None]] = []
        for member in exc.exceptions:  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
            found.extend(_leaves_to_trace(member))  # pyright: ignore[reportUnknownArgumentType]
        return found
    return [(exc, record_of(exc))]
