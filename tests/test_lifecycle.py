"""A holder's life: one vocabulary, and only the transitions written down."""

from __future__ import annotations

import pytest

from trio_parallel_cm._lifecycle import LEGAL, Life, check_transition


def test_every_state_has_its_transitions_written_down() -> None:
    assert set(LEGAL) == set(Life)
    # Everything ends closed or not entered; nothing comes back to entering.
    assert all(Life.ENTERING not in targets for targets in LEGAL.values())
    assert LEGAL[Life.CLOSED] == LEGAL[Life.NOT_ENTERED] == frozenset()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (Life.ENTERING, Life.OPEN),
        (Life.ENTERING, Life.NOT_ENTERED),
        (Life.OPEN, Life.FAILING),
        (Life.OPEN, Life.EXITING),
        (Life.FAILING, Life.CLOSED),
        (Life.EXITING, Life.CLOSED),
    ],
)
def test_legal_transitions_pass(old: Life, new: Life) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (Life.ENTERING, Life.CLOSED),
        (Life.OPEN, Life.CLOSED),
        (Life.EXITING, Life.FAILING),
        (Life.FAILING, Life.EXITING),
        (Life.CLOSED, Life.OPEN),
        (Life.NOT_ENTERED, Life.CLOSED),
    ],
)
def test_illegal_transitions_are_refused(old: Life, new: Life) -> None:
    with pytest.raises(AssertionError, match=f"cannot go from {old.value} to {new.value}"):
        check_transition(old, new)
