"""The type variables of the overloads that type what ``parallel_with`` and ``enter_all``
yield: ``parallel_with(a, b)`` is a ``ParallelContext[tuple[A, B]]``."""

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")
T7 = TypeVar("T7")
T8 = TypeVar("T8")
