"""One map over nested values: a function applied to every tensor of a structure.

Recurrent states are tuples of tensors (`(h, c)`), batches are dicts, tuples, lists and
namedtuples (a `Padded` among them) of tensors. `map_tensors` rebuilds such a structure
with `fn` applied to each tensor, or to each value a `leaf` test picks out first (so a
caller can treat a whole `Padded` as one value); everything else is kept as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def map_tensors(
    fn: Callable[[Any], Any], value: Any, *, leaf: Callable[[Any], bool] | None = None
) -> Any:
    """`value` with `fn` applied to each tensor (or each value `leaf` accepts) inside it."""
    if isinstance(value, torch.Tensor) or (leaf is not None and leaf(value)):
        return fn(value)
    if isinstance(value, tuple):
        items = [map_tensors(fn, item, leaf=leaf) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, list):
        return [map_tensors(fn, item, leaf=leaf) for item in value]
    if isinstance(value, dict):
        return {key: map_tensors(fn, item, leaf=leaf) for key, item in value.items()}
    return value
