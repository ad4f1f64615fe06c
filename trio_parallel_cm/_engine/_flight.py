"""What is on its way out of a block, passed from exit to exit as nested blocks pass it.

The rule (docs/semantics.rst, "What each __aexit__ receives"), from CPython's own tests of
``async with`` and ``contextlib.AsyncExitStack`` (``test_async_exit_exception_chaining``
and its family in Lib/test/test_contextlib_async.py):

* An exception raised by an ``__aexit__`` *supersedes* what that ``__aexit__`` was
  handling: the next ``__aexit__`` out receives the newest exception (one, or a group when
  several context managers failed concurrently), and the older ones travel on as its
  ``__context__``, which Python set already.
* Suppressing what it received suppresses everything that exception superseded.
* Nothing is lost for the report: every failure that nothing suppressed leaves the block
  in the one group, superseded or not.

A ``Flight`` is that state between two steps of the unwinding: the newest exceptions, and
the identities of everything a suppression of them would suppress.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from .._errors import cancelled_parts

NOTHING: Final[frozenset[int]] = frozenset()


def ids(excs: Iterable[BaseException]) -> frozenset[int]:
    """The identities of ``excs``."""
    return frozenset(map(id, excs))


@attrs.frozen
class Flight:
    """What propagates: the newest exceptions, and what suppressing them suppresses.

    Attributes:
        current: what the next ``__aexit__`` out receives (one exception, several that
            failed concurrently, or nothing).
        covers: the identities of ``current`` and of every exception it superseded.
    """

    current: tuple[BaseException, ...] = ()
    covers: frozenset[int] = NOTHING

    @classmethod
    def of(cls, excs: Sequence[BaseException]) -> Flight:
        """A flight of ``excs`` that supersede nothing (the body's exception, say)."""
        return cls(tuple(excs), ids(excs)) if excs else NO_FLIGHT

    def superseded_by(self, failures: Sequence[BaseException]) -> Flight:
        """``failures`` were raised while this was being handled: they are the newest."""
        return Flight(tuple(failures), self.covers | ids(failures))

    def alongside(
        self, failures: Sequence[BaseException], *, order: Sequence[BaseException]
    ) -> Flight:
        """``failures`` go on too, superseding nothing (they failed concurrently with
        what is newest); ``current`` in the order of ``order``, others first."""
        rank = {id(exc): place for place, exc in enumerate(order, start=1)}
        current = sorted((*self.current, *failures), key=lambda exc: rank.get(id(exc), 0))
        return Flight(tuple(current), self.covers | ids(failures))

    def suppressed(self, *, native: bool) -> tuple[Flight, frozenset[int]]:
        """A context manager suppressed ``current``: what goes on, and what is gone.

        What was delivered natively (a cancellation) is suppressed whole; otherwise the
        ``Cancelled`` parts go on, as they would out of nested blocks.
        """
        kept = () if native else tuple(cancelled_parts(self.current))
        return Flight(kept, ids(kept)), self.covers - ids(kept)


NO_FLIGHT: Final = Flight()
