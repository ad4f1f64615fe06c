"""Enter and exit async context managers concurrently, on Trio and asyncio, with every
guarantee of nested ``async with``."""

from ._engine._retry import Retry as Retry
from ._errors import ContextFailure as ContextFailure
from ._errors import ParallelBaseExceptionGroup as ParallelBaseExceptionGroup
from ._errors import ParallelExceptionGroup as ParallelExceptionGroup
from ._errors import failures_of as failures_of
from ._graph import Node as Node
from ._graph import ResourceGraph as ResourceGraph
from ._graph import Resources as Resources
from ._handle import ContextHandle as ContextHandle
from ._handle import ContextState as ContextState
from ._handle import start_context as start_context
from ._parallel import ParallelContext as ParallelContext
from ._parallel import parallel_with as parallel_with
from ._report import format_failures as format_failures
from ._stack import ParallelExitStack as ParallelExitStack
from ._thread import ThreadContext as ThreadContext
from ._thread import in_thread as in_thread
from ._timeline import PhaseEvent as PhaseEvent
from ._timeline import Timeline as Timeline

__all__ = (
    "ContextFailure",
    "ContextHandle",
    "ContextState",
    "Node",
    "ParallelBaseExceptionGroup",
    "ParallelContext",
    "ParallelExceptionGroup",
    "ParallelExitStack",
    "PhaseEvent",
    "ResourceGraph",
    "Resources",
    "Retry",
    "ThreadContext",
    "Timeline",
    "failures_of",
    "format_failures",
    "in_thread",
    "parallel_with",
    "start_context",
)


def _fix_module_names() -> None:
    # Tracebacks, reprs and the docs show the public path, as trio and outcome do.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("trio_parallel_cm."):
            obj.__module__ = "trio_parallel_cm"


_fix_module_names()
del _fix_module_names
