"""The failure of a retried node read as its attempts: which of them failed alike.

Design notes:

* A ``ResourceGraph`` node with ``retry`` whose every attempt failed fails with one plain
  exception group of the attempts' exceptions, in order, whose message is ``"N attempts
  failed"``, made by ``attempts_group`` (called by ``Holder._enter_failed``), which marks
  it.  A group that ``split`` or ``except*`` derived from it is a new object, without
  the mark: it reads as any group.
* Two attempts failed *alike* when a report would say the same of them, where and when
  aside: the same type, the same ``str()``, the same notes, the same record (which
  context manager failed, in which phase, not when), alike members if they are groups,
  and alike chains as a report shows them (``__cause__``, else ``__context__`` unless
  suppressed), compared the same way.  A report then shows them once.
* A full traceback is shown once per *distinct* traceback: alike, and raised through
  the same frames.  Frames of this package are left out of the comparison: the last
  attempt's exception passes through more of them on its way out of the holder than
  the attempts that were retried.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from typing import Final, cast

from ._errors import record_of

# The directory of this package, as frames name their files (with a final separator).
_PACKAGE: Final = os.path.join(os.path.dirname(__file__), "")

# What a report shows of an exception, as a hashable value (see ``signature``).
Signature = tuple[object, ...]


# Set on the group of a retried node's failure (``attempts_group``).
_MARK: Final = "__trio_parallel_cm_attempts__"


def attempts_message(count: int) -> str:
    """The message of a retried node's failure."""
    return f"{count} attempts failed"


def attempts_group(attempts: Sequence[BaseException]) -> BaseExceptionGroup[BaseException]:
    """The failure of a node whose every attempt failed: one group of them, marked."""
    group = BaseExceptionGroup(attempts_message(len(attempts)), attempts)
    setattr(group, _MARK, True)
    return group


def attempts_of(exc: BaseException | None) -> tuple[BaseException, ...] | None:
    """The attempts' exceptions, in order, if ``exc`` is a retried node's failure."""
    if not getattr(exc, _MARK, False):
        return None
    group = cast("BaseExceptionGroup[BaseException]", exc)
    return group.exceptions


def alike_classes(attempts: Sequence[BaseException], *, frames: bool = False) -> list[list[int]]:
    """The attempts' numbers (from 1) in classes of attempts that failed alike.

    Each class is in order, and the classes are in the order of their first attempt.
    With ``frames``, attempts are alike only if their tracebacks went through the same
    frames too (this package's aside): one class per distinct traceback.
    """
    classes: dict[Signature, list[int]] = {}
    for number, exc in enumerate(attempts, start=1):
        classes.setdefault(signature(exc, frames=frames), []).append(number)
    return list(classes.values())


def label(numbers: Sequence[int], *, alike: bool = True) -> str:
    """``attempt 3``, ``attempts 1, 2 alike``, ``attempts 1-4 alike``, ``attempts 1, 3-5``.

    A run of three or more consecutive numbers is written as a range.
    """
    if len(numbers) == 1:
        return f"attempt {numbers[0]}"
    runs: list[list[int]] = []
    for number in numbers:
        if runs and runs[-1][-1] == number - 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    parts = [f"{run[0]}-{run[-1]}" if len(run) >= 3 else ", ".join(map(str, run)) for run in runs]
    return f"attempts {', '.join(parts)}{' alike' if alike else ''}"


def summary(attempts: Sequence[BaseException], describe: Callable[[BaseException], str]) -> str:
    """A retried node's failure in one line, each class of alike attempts once.

    ``3 attempts failed alike: OSError: refused``, or, when they differ, ``3 attempts
    failed: attempts 1, 2 alike: OSError: refused; attempt 3: TooSlowError: ...``, each
    attempt told by ``describe``.
    """
    head = attempts_message(len(attempts))
    classes = alike_classes(attempts)
    if len(classes) == 1:
        return f"{head} alike: {describe(attempts[0])}"
    parts = (f"{label(numbers)}: {describe(attempts[numbers[0] - 1])}" for numbers in classes)
    return f"{head}: {'; '.join(parts)}"


def all_alike(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a retried node's failure whose attempts all failed alike."""
    attempts = attempts_of(exc)
    return attempts is not None and len(alike_classes(attempts)) == 1


def signature(exc: BaseException, *, frames: bool = False) -> Signature:
    """What a report shows of ``exc``, where and when aside: equal ones read alike.

    With ``frames``, also the frames its traceback went through (this package's aside).
    """
    return _signature(exc, frames, frozenset())


def _signature(exc: BaseException, frames: bool, chain: frozenset[int]) -> Signature:
    if id(exc) in chain:  # a cycle in the chain (the report shows it once too)
        return ("(shown above)",)
    chain |= {id(exc)}
    record = record_of(exc)
    who = None if record is None else (record.name, record.position, record.phase, record.stage)
    members = tuple(_signature(member, frames, chain) for member in members_of(exc))
    link: tuple[object, ...] = ()
    if exc.__cause__ is not None:
        link = ("caused by", _signature(exc.__cause__, frames, chain))
    elif exc.__context__ is not None and not exc.__suppress_context__:
        link = ("while handling", _signature(exc.__context__, frames, chain))
    notes = tuple(getattr(exc, "__notes__", None) or ())
    path = _frames(exc) if frames else ()
    return (type(exc), str(exc), notes, who, members, link, path)


def members_of(exc: BaseException) -> tuple[BaseException, ...]:
    """The members of ``exc`` if it is an exception group, else none."""
    if isinstance(exc, BaseExceptionGroup):
        return cast("BaseExceptionGroup[BaseException]", exc).exceptions
    return ()


def _frames(exc: BaseException) -> tuple[tuple[str, int, str], ...]:
    """The frames ``exc`` was raised through, outside this package."""
    return tuple(
        (frame.f_code.co_filename, line, frame.f_code.co_name)
        for frame, line in traceback.walk_tb(exc.__traceback__)
        if not frame.f_code.co_filename.startswith(_PACKAGE)
    )
