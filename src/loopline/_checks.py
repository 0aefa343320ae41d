"""Argument checks, written once, so every stage refuses a bad option in the same words.

Each check returns the value it accepted (an `int` as a plain int) or raises `ValueError`
naming the caller, the argument, what it must be and what it got, e.g.
`unroll: steps must be an int >= 1, got 0`. A bool is refused where an int is asked,
although Python counts `True` as one: `steps=True` is a mistake, not a 1.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """Whether `value` is an integer (numpy's included) and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(who: str, name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as an int if it is one (and >= `minimum`), else a ValueError naming it."""
    if not is_int(value) or (minimum is not None and value < minimum):
        wanted = "an int" if minimum is None else f"an int >= {minimum}"
        raise ValueError(f"{who}: {name} must be {wanted}, got {value!r}")
    return int(value)


def check_optional_int(who: str, name: str, value: Any, minimum: int) -> int | None:
    """`value` if None or an int >= `minimum`, else a ValueError naming it."""
    if value is None:
        return None
    if not is_int(value) or value < minimum:
        raise ValueError(f"{who}: {name} must be None or an int >= {minimum}, got {value!r}")
    return int(value)


def check_choice(who: str, name: str, value: Any, choices: Collection[str]) -> str:
    """`value` if it is one of `choices`, else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        names = [repr(choice) for choice in choices]
        listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        raise ValueError(f"{who}: {name} must be {listed}, got {value!r}")
    return value


def check_place(who: str, rank: Any, world_size: Any) -> None:
    """An explicit `(rank, world_size)`: both or neither, and the rank inside the world."""
    if (rank is None) != (world_size is None):
        raise ValueError(f"{who}: give both rank and world_size, or neither")
    if world_size is not None:
        size = check_int(who, "world_size", world_size, 1)
        if not is_int(rank) or not 0 <= rank < size:
            raise ValueError(f"{who}: rank must be an int in [0, {size}), got {rank!r}")
