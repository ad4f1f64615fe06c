"""The runtimes: everything the engine asks of the event loop, behind one interface.

The engine (``_engine/``), the faces and the records reach the event loop through this
package only, by the names below, and never import ``trio``, ``anyio`` or ``asyncio``:

* structured concurrency: ``CancelScope`` (deadline, shield, ``cancel``, entered and
  exited in one task), ``Cancelled`` (what a cancelled task meets), ``open_nursery`` and
  its ``Nursery`` (``start``, with the hand-off of ``nursery.start``, and ``start_soon``),
  ``moved`` (whether ``started()`` moved a task into the nursery), ``Event``,
  ``CapacityLimiter``, ``current_time``, ``sleep``, ``too_slow`` (the failure of a
  timeout);
* tasks: ``current_task``, ``in_task``, ``checkpoint``, ``checkpoint_if_cancelled``,
  ``is_cancelled``, ``ki_protected``;
* parking a holder: ``park(abort)`` sleeps until ``unpark(task)``; a cancellation first
  calls ``abort`` (which returns ``ABORTED``), then raises.

Today the one implementation is Trio's (``_trio.py``).  Design notes for the second
(asyncio, issue 18), kept here so that the interface is written for both:

* The runtime will be chosen per block from the running library (sniffio), and reached
  through the block, its stages and their holders, never by a global: the engine calls
  these names on a runtime object, as it calls them on this module now.
* Parking on asyncio has no ``wait_task_rescheduled``: a release (a future's result) and
  a cancellation (``Task.cancel``) can land in the same tick.  The rule to implement: a
  park whose future has a result was released, whatever else arrived; the cancellation
  that arrived with it is kept for the holder's next checkpoint (it is not lost, and it
  does not turn a release into an interruption).
"""

from __future__ import annotations

from ._trio import (
    ABORTED,
    AbortFn,
    Cancelled,
    CancelScope,
    CapacityLimiter,
    Event,
    Nursery,
    Task,
    TaskStatus,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    current_time,
    in_task,
    is_cancelled,
    ki_protected,
    moved,
    open_nursery,
    park,
    sleep,
    too_slow,
    unpark,
)

__all__ = [
    "ABORTED",
    "AbortFn",
    "CancelScope",
    "Cancelled",
    "CapacityLimiter",
    "Event",
    "Nursery",
    "Task",
    "TaskStatus",
    "checkpoint",
    "checkpoint_if_cancelled",
    "current_task",
    "current_time",
    "in_task",
    "is_cancelled",
    "ki_protected",
    "moved",
    "open_nursery",
    "park",
    "sleep",
    "too_slow",
    "unpark",
]
