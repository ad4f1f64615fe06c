"""The demo (``python -m trio_parallel_cm``), run on real loopback sockets with tiny delays.

These tests check what the demo shows, never how fast it was: timings belong in benchmarks.
"""

from __future__ import annotations

import pytest
import trio

from trio_parallel_cm.__main__ import Delays, main, run_demo

TINY = Delays(
    db=0.002, cache=0.003, queue=0.001, search=0.002, retry=0.004, config=0.001, app=0.001
)


def listed(output: str, label: str) -> list[str]:
    """The names the demo lists after ``label`` (on a line of their own)."""
    [line] = [line for line in output.splitlines() if line.strip().startswith(label)]
    names = line.split(label, 1)[1].strip()
    return [] if names == "(none)" else names.split(", ")


async def test_demo_shows_both_timings_and_a_readable_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with trio.fail_after(30):  # a hang fails the test instead of blocking the suite
        await main(TINY)
    output = capsys.readouterr().out

    timings = [line for line in output.splitlines() if "sequential:" in line]
    assert len(timings) == 1
    assert "parallel_with:" in timings[0]
    assert "x faster)" in timings[0]

    # The start-up timelines: a bar per service (4, the graph's 5, then 8), the slow ones marked.
    assert sum(" |" in line for line in output.splitlines()) == 4 + 5 + 8
    # Each timeline marks the context manager that held the body back (not the legend).
    marked = [line for line in output.splitlines() if line.startswith("   * ") and " |" in line]
    assert len(marked) >= 3

    # The refused service is named with its position and phase; the body never ran.
    assert "1 of 3 context managers failed (1 entering)" in output
    assert "- open_search (position 2) failed while entering after" in output
    assert "OSError: all attempts to connect to 127.0.0.1:" in output
    assert "not reached" not in output

    # Whatever had opened when search gave up was closed again.
    opened = listed(output, "opened before the failure:")
    closed = listed(output, "connections closed again:")
    assert "search" not in opened
    assert set(opened) <= set(closed) <= {"db", "cache"}

    # Stages and the graph side by side; the graph's critical path is a chain of its
    # dependencies (which one depends on the real latencies: not asserted).
    assert len([line for line in output.splitlines() if "stages: up in" in line]) == 1
    assert len([line for line in output.splitlines() if "graph:  up in" in line]) == 1
    part3 = output.split("3. Dependencies", 1)[1].split("4. A client", 1)[0]
    marked = [line.split()[1] for line in part3.splitlines() if line.startswith("   * ")]
    assert marked in (
        ["open_search"],
        ["open_config", "open_db", "open_app"],
        ["open_config", "open_cache", "open_app"],
    )

    # Many servers, two of them down: the client runs with the others, and reports those.
    part4 = output.split("4. A client of many servers", 1)[1]
    assert listed(part4, "up:") == ["db", "cache", "queue", "search", "config", "app"]
    for position, name in ((6, "mail"), (7, "metrics")):
        assert f"{name} (position {position}) failed while entering after" in part4
    # Each was refused alike three times: said once, with its cause (3 lines, not 10).
    assert part4.count("3 attempts failed alike: OSError: all attempts to connect to") == 2
    assert part4.count("OSError: all attempts to connect to") == 2
    down = part4.split("format_failures(connections.failures):\n", 1)[1].split("\n\n", 1)[0]
    assert len(down.splitlines()) == 2 * 3
    assert part4.count("failed, tolerated, 3 attempts alike") == 2


def test_run_demo_runs_main_under_trio_run(capsys: pytest.CaptureFixture[str]) -> None:
    run_demo(TINY)
    output = capsys.readouterr().out
    assert output.startswith("trio_parallel_cm demo: 6 services on 127.0.0.1")
    assert "open_search (position 2) failed while entering" in output
