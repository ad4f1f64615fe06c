"""Looking at exceptions: members, leaves, notes, the summary the library writes."""

from __future__ import annotations

from collections.abc import Sequence

from tests.harness.loops import CANCELLED
from tests.harness.scenario import ENTERING, EXITING, OPEN


def members(exc: BaseException | None) -> tuple[BaseException, ...] | None:
    """The members of a group; ``None`` for anything else."""
    if isinstance(exc, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = exc  # pyright: ignore[reportUnknownVariableType]
        return group.exceptions
    return None


def leaves(exc: BaseException | None) -> list[BaseException]:
    """The exceptions that are not groups, in a group at any depth (or ``[exc]``)."""
    if exc is None:
        return []
    inner = members(exc)
    if inner is None:
        return [exc]
    return [leaf for member in inner for leaf in leaves(member)]


def nodes(exc: BaseException | None) -> list[BaseException]:
    """Every exception in the tree of ``exc``, groups included."""
    if exc is None:
        return []
    inner = members(exc)
    return [exc] if inner is None else [exc, *(node for m in inner for node in nodes(m))]


def notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


def has_cancelled(exc: BaseException | None) -> bool:
    return any(isinstance(leaf, CANCELLED) for leaf in leaves(exc))


def summary(total: int, phases: Sequence[str], body_failed: bool) -> str:
    """The group message of ``docs/semantics.rst`` (Errors, Message)."""
    parts = ["the body raised"] if body_failed else []
    if phases:
        counts = ", ".join(
            f"{phases.count(p)} {p}" for p in (ENTERING, OPEN, EXITING) if p in phases
        )
        noun = "context manager" if total == 1 else "context managers"
        parts.append(f"{len(phases)} of {total} {noun} failed ({counts})")
    return "; ".join(parts)
