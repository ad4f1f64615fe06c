"""The life of a holder: one vocabulary, with its legal transitions written down.

The words are those of the phases a failure is reported in (``entering``, ``open``,
``exiting``) and of a handle's public ``ContextState``, which is derived from this one.
"""

from __future__ import annotations

import enum
from typing import Final


class Life(enum.Enum):
    """Where a holder's context manager is in its life."""

    ENTERING = "entering"  # __aenter__ has not returned yet (or was never started)
    OPEN = "open"  # entered, parked until released
    FAILING = "failing"  # cancelled from inside while open: it failed, or ended by itself
    EXITING = "exiting"  # released: __aexit__ runs, or is about to
    CLOSED = "closed"  # __aexit__ has finished
    NOT_ENTERED = "not entered"  # __aenter__ raised, was cancelled, or entered too late


LEGAL: Final[dict[Life, frozenset[Life]]] = {
    Life.ENTERING: frozenset({Life.OPEN, Life.NOT_ENTERED}),
    Life.OPEN: frozenset({Life.FAILING, Life.EXITING}),
    Life.FAILING: frozenset({Life.CLOSED}),
    Life.EXITING: frozenset({Life.CLOSED}),
    Life.CLOSED: frozenset(),
    Life.NOT_ENTERED: frozenset(),
}


# The table keyed by name: an Enum member's hash is computed in Python, a str's is cached,
# and this check runs at every state change of every holder.
NEXT: Final[dict[str, tuple[Life, ...]]] = {old.name: tuple(new) for old, new in LEGAL.items()}


def check_transition(old: Life, new: Life) -> None:
    """Raise ``AssertionError`` for a transition that the table does not allow."""
    if new not in NEXT[old._name_]:
        raise AssertionError(f"a holder cannot go from {old.value} to {new.value}")
