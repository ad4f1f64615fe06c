"""A holder's life: one vocabulary, and only the transitions written down."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import trio_parallel_cm
from trio_parallel_cm._engine._lifecycle import LEGAL, Life, check_transition


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


# Each field of a holder that records its life, and the one function that writes it (its
# ``__init__`` aside).  ``state`` is derived from them, never written.
WRITERS = {
    "life": "_become",  # the holder task
    "released": "release",  # the owner's side
    "delivery": "release",
    "interrupted": "_abort",  # the abort function of its park
    "awaiting_release": "_await_release",  # the holder task, failing
}


def _writes(path: Path) -> list[tuple[str, str]]:
    """(attribute, enclosing function) for every assignment to an attribute in ``path``."""
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            targets: list[ast.expr] = []
            if isinstance(child, ast.Assign):
                targets = child.targets
            elif isinstance(child, (ast.AugAssign, ast.AnnAssign)):
                targets = [child.target]
            found.extend(
                (part.attr, function)
                for target in targets
                for part in ast.walk(target)
                if isinstance(part, ast.Attribute)
            )
            visit(child, function)

    visit(ast.parse(path.read_text()), "<module>")
    return found


def test_one_writer_per_field_of_a_holders_life() -> None:
    package = Path(trio_parallel_cm.__file__).parent
    writes = [w for path in sorted(package.rglob("*.py")) for w in _writes(path)]
    for field, writer in WRITERS.items():
        writers = {function for attr, function in writes if attr == field} - {"__init__"}
        assert writers == {writer}, field
    assert not [w for w in writes if w[0] == "state"]
    # Made with the holder, by the face that resolved them: nothing writes them later.
    assert {function for attr, function in writes if attr == "options"} == {"__init__"}


def test_only_the_holder_writes_its_scopes_shield() -> None:
    # The stage and a handle's watcher ask (``Holder.unshield``); they never write it.
    package = Path(trio_parallel_cm.__file__).parent
    writers = {
        path.name
        for path in sorted(package.rglob("*.py"))
        for attr, _ in _writes(path)
        if attr == "shield"
    }
    assert writers == {"_holder.py"}
