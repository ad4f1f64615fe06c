"""The overload ladders of ``parallel_with`` and ``ParallelExitStack.enter_all`` cannot drift.

Overloads must be spelled out one by one; this reads both ladders from the source (on
every supported Python, unlike ``typing.get_overloads``) and checks that they are the same
ladder: ``enter_all`` takes what ``parallel_with`` takes (but ``observer`` and
``shutdown_timeout``, options of the whole stack, and the empty call) and returns the value
that ``ParallelContext`` yields.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "trio_parallel_cm"


def ladder(module: str, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The ``@overload`` definitions of ``name`` in ``module``, in source order."""
    tree = ast.parse((PACKAGE / module).read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name == name
        and any(ast.unparse(d) == "overload" for d in node.decorator_list)
    ]


def shape(node: ast.FunctionDef | ast.AsyncFunctionDef, drop: set[str]) -> tuple[str, ...]:
    """The parameters (name: annotation = default) and the return annotation."""
    args = node.args
    parts = [
        f"{a.arg}: {ast.unparse(a.annotation or ast.Constant(None))}" for a in args.posonlyargs
    ]
    parts = [p for p in parts if not p.startswith("self:")]
    if args.vararg is not None:
        parts.append(
            f"*{args.vararg.arg}: {ast.unparse(args.vararg.annotation or ast.Constant(None))}"
        )
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if arg.arg not in drop:
            annotation = ast.unparse(arg.annotation or ast.Constant(None))
            value = "" if default is None else f" = {ast.unparse(default)}"
            parts.append(f"{arg.arg}: {annotation}{value}")
    assert node.returns is not None
    parts.append(f"-> {ast.unparse(node.returns)}")
    return tuple(parts)


def test_enter_all_has_the_ladder_of_parallel_with() -> None:
    combinator = [
        shape(node, drop={"observer", "shutdown_timeout"})
        for node in ladder("_parallel.py", "parallel_with")
    ]
    stage = [shape(node, drop=set()) for node in ladder("_stack.py", "enter_all")]
    assert len(combinator) >= 10
    # The empty parallel_with() has no stage counterpart (a stage of nothing).
    assert combinator[0] == (
        "limit: int | None = None",
        "enter_timeout: float | None = None",
        "exit_timeout: float | None = None",
        "-> ParallelContext[tuple[()]]",
    )
    unwrapped = [
        (*params, ret.replace("-> ParallelContext[", "-> ", 1)[:-1])
        for *params, ret in combinator[1:]
    ]
    assert stage == unwrapped


def test_the_ladder_covers_one_to_eight_positional_context_managers() -> None:
    arities = [
        len(node.args.posonlyargs) - (node.args.posonlyargs[0].arg == "self")
        for node in ladder("_stack.py", "enter_all")
        if node.args.posonlyargs
    ]
    assert arities[:8] == list(range(1, 9))
