"""Every example of the documentation runs and prints what the documentation shows.

The examples are the files in ``docs/examples/``; the pages include them with
``literalinclude``, and their output from the ``.txt`` file of the same name.  Each one runs
here on the virtual clock, in process and as a script, so neither can rot.

An example whose name starts with ``asyncio_`` runs on asyncio: in process on
``docs/examples/virtual_loop.py``'s ``VirtualTimeLoop`` (``tests/aio.py``), and as a
script on the same, whose time jumps to the next timer whenever nothing
is ready, as Trio's autojump clock does.  The others run on Trio.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from tests import aio
from tests.examples import EXAMPLES, example_main, expected_output

DOCS = EXAMPLES.parent
# Modules the examples import; they have no ``main`` of their own.
HELPERS = frozenset({"resources", "virtual_clock", "virtual_loop"})
NAMES = sorted(path.stem for path in EXAMPLES.glob("*.py") if path.stem not in HELPERS)
ON_ASYNCIO = "asyncio_"  # the prefix of the examples that run on asyncio
ASYNCIO_CASES = [name for name in NAMES if name.startswith(ON_ASYNCIO)]
# Examples with real sockets on loopback move the virtual clock themselves, as in their
# ``__main__``: only when every task is blocked and no byte, connection or refusal is on its
# way, however long a loaded machine takes to deliver it (virtual_clock.py says how it
# knows).  The fixture's autojump is off for them: a jump after any real idleness
# could come while the kernel still delivers, and change the output.
MOVE_THEIR_CLOCK = frozenset({"many_servers"})
CASES = NAMES  # (every example, on every supported Python)
TRIO_CASES = [name for name in CASES if name not in ASYNCIO_CASES]


@pytest.fixture
def examples_importable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``import resources`` works in an example, as it does when it runs as a script."""
    monkeypatch.setattr(sys, "path", [str(EXAMPLES), *sys.path])
    yield
    for helper in HELPERS:
        sys.modules.pop(helper, None)


@pytest.mark.parametrize("name", TRIO_CASES)
@pytest.mark.usefixtures("examples_importable")
async def test_example_prints_its_documented_output(
    name: str, autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    autojump_clock.autojump_threshold = math.inf if name in MOVE_THEIR_CLOCK else 0
    await example_main(name)()
    assert capsys.readouterr().out == expected_output(name)


@pytest.mark.parametrize("name", ASYNCIO_CASES)
@pytest.mark.usefixtures("examples_importable")
def test_asyncio_example_prints_its_documented_output(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> None:
        await example_main(name)()

    aio.run(main())  # on the virtual loop
    assert capsys.readouterr().out == expected_output(name)


def test_there_are_asyncio_examples() -> None:
    assert ASYNCIO_CASES  # (else the prefix changed, and they would run on Trio)


@pytest.mark.parametrize("name", CASES)
def test_example_runs_as_a_script(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", f"{name}.py"],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected_output(name)


def included_files() -> set[str]:
    """The ``docs/examples`` files that some page includes."""
    found: set[str] = set()
    for page in DOCS.glob("*.rst"):
        found.update(re.findall(r"literalinclude:: examples/(\S+)", page.read_text()))
    return found


def test_every_example_and_its_output_are_in_the_docs() -> None:
    included = included_files()
    for name in NAMES:
        assert f"{name}.py" in included, f"docs/examples/{name}.py is on no page"
        assert f"{name}.txt" in included, f"the output of docs/examples/{name}.py is on no page"
    assert {path.name for path in EXAMPLES.iterdir() if path.suffix in (".py", ".txt")} >= included


def test_the_tutorial_has_no_code_block_but_included_files() -> None:
    # Every code in the tutorial is an example that runs above: no literal blocks (``::``),
    # no ``code-block`` directives.
    text = (DOCS / "tutorial.rst").read_text()
    assert "code-block::" not in text
    literal = [
        line
        for line in text.splitlines()
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".. ")
    ]
    assert not literal


def test_the_alternatives_page_names_tests_that_exist() -> None:
    page = (DOCS / "alternatives.rst").read_text()
    named = set(re.findall(r"\b(test_\w+)\b(?!\.py)", page))
    defined = set(
        re.findall(
            r"^\s*(?:async )?def (test_\w+)",
            (Path(__file__).parent / "test_alternatives.py").read_text(),
            re.M,
        )
    )
    assert named, "the page names no test"
    assert named <= defined, sorted(named - defined)
