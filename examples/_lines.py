"""The one rule by which the examples count the lines of loopline's side and plain PyTorch's."""

from __future__ import annotations

import ast
import inspect
import textwrap


def code_lines(*functions) -> int:
    """Non-blank lines of the functions (or classes), less comment lines and docstrings.

    A statement that ruff's formatter spreads over several lines counts as that many, on
    both sides alike; signatures and decorators count, as they must be written too.
    """
    total = 0
    for fn in functions:
        source = textwrap.dedent(inspect.getsource(fn))
        docstrings = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                first = node.body[0]
                if ast.get_docstring(node, clean=False) is not None:
                    docstrings.update(range(first.lineno, first.end_lineno + 1))
        lines = enumerate(source.splitlines(), 1)
        total += sum(
            1
            for number, line in lines
            if line.strip() and not line.strip().startswith("#") and number not in docstrings
        )
    return total


def describe_counts(loopline: tuple, plain: tuple) -> str:
    """The printed lines: `lines: loopline 31, plain PyTorch 58 (saves 27)`, then what each
    side's count covers, by function."""
    ours, theirs = code_lines(*loopline), code_lines(*plain)
    if theirs > ours:
        verdict = f"saves {theirs - ours}"
    else:
        verdict = f"saves none: {ours - theirs} more" if ours > theirs else "the same"
    return "\n".join([
        f"lines: loopline {ours}, plain PyTorch {theirs} ({verdict})",
        "  loopline: " + ", ".join(fn.__name__ for fn in loopline),
        "  plain:    " + ", ".join(fn.__name__ for fn in plain),
    ])  # fmt: skip
