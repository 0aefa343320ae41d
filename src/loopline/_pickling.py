"""Clear errors for user functions that cannot travel to spawned DataLoader workers.

Workers started with 'spawn' or 'forkserver' receive the dataset by pickling, and a
lambda or closure fails there with a message about `__main__` attribute lookups. Stages
call `check_picklable` from `__getstate__` to fail earlier, saying what to pass instead.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from typing import Any


def describe(fn: Callable[..., Any]) -> str:
    """A readable name for a user function, looking through functools.partial."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__qualname__", None) or repr(fn)


def check_picklable(who: str, fn: Callable[..., Any], **companions: Any) -> None:
    """Raise a TypeError saying what to pass instead when `fn` or a companion won't pickle.

    Args:
        who: the calling stage, e.g. "from_generator", for the message.
        fn: the user function.
        companions: further values that travel with it (e.g. `args=...`).
    """
    for what, value in {"fn": fn, **companions}.items():
        try:
            pickle.dumps(value)
        except Exception as error:
            hint = _function_hint(fn) if what == "fn" else f"pass {what} that pickle can copy"
            label = "the function" if what == "fn" else what
            raise TypeError(
                f"{who}: {label} {describe(fn) if what == 'fn' else 'of ' + describe(fn)} "
                f"cannot be pickled for DataLoader workers started with 'spawn' or "
                f"'forkserver' ({error}); {hint}, or use multiprocessing_context='fork'"
            ) from error


def _function_hint(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if getattr(fn, "__name__", "") == "<lambda>":
        kind = "it is a lambda"
    elif "<locals>" in getattr(fn, "__qualname__", ""):
        kind = "it is a local function or closure"
    else:
        kind = "it holds state pickle cannot copy"
    return (
        f"{kind}; define it with def at module level (a functools.partial of such a "
        "function is fine)"
    )
