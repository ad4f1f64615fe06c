"""Fault injection for ``trio_parallel_cm`` (issue #5).

* :class:`ScriptedCM` is a fake async context manager whose behaviour is data, a frozen
  :class:`Script`: enter and exit latencies (or no checkpoint at all), a failure while
  entering, while open (its own background task crashes, or its own deadline fires) or
  while exiting, suppression, a nursery or a cancel scope held across the yield.  It
  records what happened to it: tasks, calls, what it received and raised, virtual times.
* A :class:`Scenario` is up to five of them, a :class:`Body`, the public face of the
  library that runs them (:class:`Mode`, :class:`Close` for handles), its options and an
  optional outer cancellation.
  :func:`run_scenario` runs one in a fresh ``trio.run`` on a virtual clock, with Trio's
  scheduler seeded: the same scenario always runs the same way.
* :func:`check` states the invariants of ``docs/semantics.rst`` that must hold after any
  scenario, and returns the violations as sentences (an empty list: all good).
* :func:`exhaustive` enumerates a small space completely; :func:`scenarios` is the
  hypothesis strategy for the large one.

The oracle is built from observation, not from a second implementation: each fake
records exactly what escaped its ``__aenter__`` and ``__aexit__`` and what it received,
and :func:`check` derives from that what the library must report, and how.

Options and faces beyond the defaults (issue #17): ``limit`` (the in-flight bound of
each stage, checked from the records in every scenario with a limit, failures included,
and no enter waiting with a slot free; the exit timings hold under it, an exit starting
late only while every slot is taken), ``enter_timeout`` and ``exit_timeout`` (a
``TooSlowError`` naming the timeout, an exit shielded until its deadline), an observer
(each phase change once, in the holder task, at the record's time and place in the
order), a ``GeneratorExit`` thrown into the body or raised by a fake, an ``__aexit__``
returning ``1``, a stray ``Cancelled`` raised by an ``__aexit__`` (a ``RuntimeError``
caused by it), handles closed by ``aexit(exc)`` or by two closers at once, stacks of
three stages.

What is not checked, and why:

* ``shutdown_timeout`` is not generated: when its budget starts (the exit phase of a
  block; of a stack, as it closes, across its stages) and which ``TooSlowError`` wins
  against an ``exit_timeout`` need a model of their own in ``unwinding``; not written yet.
* ``enter_timeout`` is not combined with ``limit``: an enter may time out while waiting
  for a slot, before any ``__aenter__`` call a fake could record.
* ``limit``: the page bounds enters and exits apart; the engine shares one limiter per
  stage, so "waited with a slot free" is judged on enters and exits together.
* A stray ``Cancelled`` comes only from ``__aexit__``: raised while entering or by a
  background task, a fake's own cancel scopes or nursery would take it first.
* The exhaustive space adds only what costs no scenario: an observer in every other
  one, and a suppression returning ``1`` ("move_on while open"); the rest is fuzzed.

The package is split by concern: ``scenario`` (behaviour as data), ``fake`` (the scripted
context manager), ``exceptions`` (looking at them), ``running`` (one scenario, one
``trio.run``), ``unwinding`` (the model of a block's unwinding, from the records: what each
``__aexit__`` must receive, when it may start, what a suppression takes away), ``oracle``
(``check``: one checker per numbered guarantee of ``docs/semantics.rst`` and one for its
Errors section, each problem labelled with its guarantee), ``explore`` (the exhaustive
space and the hypothesis strategies), ``hangs``.
"""

from tests.harness.explore import BEHAVIOURS, BODIES, CANCELS, exhaustive, scenarios
from tests.harness.fake import ScriptedCM
from tests.harness.hangs import HangReporter
from tests.harness.oracle import KNOWN_BUGS, check
from tests.harness.running import Outcome, run_scenario
from tests.harness.scenario import Body, Close, Ending, Fault, Mode, OpenFailure, Scenario, Script

__all__ = (
    "BEHAVIOURS",
    "BODIES",
    "CANCELS",
    "KNOWN_BUGS",
    "Body",
    "Close",
    "Ending",
    "Fault",
    "HangReporter",
    "Mode",
    "OpenFailure",
    "Outcome",
    "Scenario",
    "Script",
    "ScriptedCM",
    "check",
    "exhaustive",
    "run_scenario",
    "scenarios",
)
