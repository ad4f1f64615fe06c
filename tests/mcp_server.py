"""A tiny stdio MCP server for tests/test_asyncio_real.py, on the real MCP SDK: one tool.

Usage: ``python tests/mcp_server.py NAME [--markers DIR --expect N] [options]``

- ``echo(text)`` answers ``"NAME: text"``.
- ``--markers DIR --expect N``: on start, before it imports the SDK, the server writes its
  process id to ``DIR/NAME``, then waits until ``N`` marker files exist in ``DIR`` (or in
  ``--watch DIR2``; at most ``--wait`` seconds, else it exits with status 3) before it
  reads anything: the client's ``initialize`` cannot complete before ``N`` servers have
  started.  Opened one after another, the first server would wait in vain.
- ``--fail``: once the wait is over, exit with status 1 instead of serving (a server
  that is down, which fails once the others have started).
- ``--delay S``: a start-up latency, before the marker is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

POLL = 0.01  # seconds between two looks at the marker directory


def wait_for_markers(markers: Path, name: str, watch: Path, expect: int, wait: float) -> bool:
    """Write this server's marker, then wait until ``expect`` markers exist in ``watch``."""
    (markers / f"{name}.tmp").write_text(str(os.getpid()))
    (markers / f"{name}.tmp").rename(markers / name)  # whole, or not at all
    deadline = time.monotonic() + wait
    while sum(1 for p in watch.iterdir() if p.suffix != ".tmp") < expect:
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--markers", type=Path)
    parser.add_argument("--watch", type=Path)
    parser.add_argument("--expect", type=int, default=1)
    parser.add_argument("--wait", type=float, default=10.0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    name: str = args.name

    if args.delay:
        time.sleep(args.delay)
    if args.markers is not None and not wait_for_markers(
        args.markers, name, args.watch or args.markers, args.expect, args.wait
    ):
        print(f"{name}: fewer than {args.expect} servers started", file=sys.stderr)
        return 3
    if args.fail:
        print(f"{name}: down", file=sys.stderr)
        return 1

    from mcp.server.mcpserver import MCPServer  # (after the marker: a start is a start)

    server = MCPServer(name)

    @server.tool()
    def echo(text: str) -> str:  # (registered by the decorator)
        """Answer the text, prefixed with this server's name."""
        return f"{name}: {text}"

    server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
