"""Batching samples whose tensors differ in size: pad, and say where the padding is.

`pad_collate` walks a list of samples of any nesting (dict, tuple, list, namedtuple,
dataclass) in lockstep. At each leaf it stacks tensors of equal shape, and pads
tensors of different shapes to the largest size along each differing dimension,
returning `Padded(data, mask, lengths)` so the model knows which elements are real.
Mismatched samples fail with the sample index and the key path of the mismatch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from loopline._checks import check_optional_int
from loopline.batching.padded import Padded


@dataclasses.dataclass(frozen=True)
class _Options:
    pad_value: float
    multiple: int | None
    pad_keys: frozenset[Any]


def pad_collate(
    samples: Sequence[Any],
    *,
    pad_value: float = 0,
    pad_to_multiple_of: int | None = None,
    pad_keys: Collection[Any] = (),
) -> Any:
    """Batch samples of any nesting, padding tensors whose shapes differ.

    Tensors (and numpy arrays) of equal shape are stacked; of different shapes, padded
    to the largest size along each differing dimension and returned as `Padded`. Python
    numbers become tensors; strings and None stay lists. Use it as
    `DataLoader(..., collate_fn=pad_collate)` or through `functools.partial`.

    Args:
        samples: a list of samples with the same structure.
        pad_value: the value written into padding.
        pad_to_multiple_of: round padded sizes up to a multiple of this (e.g. 8).
        pad_keys: keys or field names whose tensors always come back as `Padded` (along
            the first dimension at least), even in a batch where all lengths are equal,
            so a model can rely on `.mask`.

    Returns:
        The batch, with the samples' structure.

    Raises:
        ValueError: samples differ in structure, tensor rank or dtype; the message names
            the sample index and key path, e.g. `sample 7: ['image']`.

    Example:
        >>> import torch, loopline
        >>> samples = [{"x": torch.ones(2), "y": 0}, {"x": torch.ones(3), "y": 1}]
        >>> batch = loopline.pad_collate(samples)
        >>> batch["x"].data
        tensor([[1., 1., 0.],
                [1., 1., 1.]])
        >>> batch["x"].mask.tolist(), batch["x"].lengths.tolist(), batch["y"].tolist()
        ([[True, True, False], [True, True, True]], [2, 3], [0, 1])
    """
    if not isinstance(samples, Sequence) or isinstance(samples, (str, bytes)) or not samples:
        raise ValueError(f"pad_collate: expected a non-empty list of samples, got {samples!r}")
    check_optional_int("pad_collate", "pad_to_multiple_of", pad_to_multiple_of, 1)
    options = _Options(pad_value, pad_to_multiple_of, frozenset(pad_keys))
    return _collate(list(samples), (), options)


def _collate(values: list[Any], path: tuple[Any, ...], options: _Options) -> Any:
    first = values[0]
    if isinstance(first, (torch.Tensor, np.ndarray)):
        if {type(value) for value in values} == {torch.Tensor}:
            return _stack_or_pad(values, path, options)
        tensors = [_as_tensor(value, i, path, first) for i, value in enumerate(values)]
        return _stack_or_pad(tensors, path, options)
    if isinstance(first, (bool, int, float)):
        if not {type(value) for value in values} <= {bool, int, float}:  # else: all plain
            for i, value in enumerate(values):
                if not isinstance(value, (bool, int, float)):
                    _mismatch(i, path, "a number (as in sample 0)", type(value).__name__)
        return torch.tensor(values)
    if first is None or isinstance(first, (str, bytes)):
        return values
    if isinstance(first, Mapping):
        keys = list(first)
        # The usual batch, one type and the same keys in the same order, is seen in two set
        # comprehensions; anything else goes through the per-sample check that names it.
        alike = {type(v) for v in values} == {type(first)} and {tuple(v) for v in values} == {
            tuple(keys)
        }
        for i, value in enumerate(() if alike else values):
            if not isinstance(value, Mapping):
                _mismatch(i, path, "a mapping (as in sample 0)", type(value).__name__)
            if set(value) != set(keys):
                missing, extra = set(keys) - set(value), set(value) - set(keys)
                found = ", ".join(
                    f"{label} {sorted(map(str, names))}"
                    for label, names in (("missing", missing), ("extra", extra))
                    if names
                )
                _mismatch(i, path, f"keys {sorted(map(str, keys))}", found)
        return {key: _collate([v[key] for v in values], (*path, key), options) for key in keys}
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        for i, value in enumerate(values):
            if type(value) is not type(first):
                _mismatch(i, path, type(first).__name__, type(value).__name__)
        fields = {
            field.name: _collate(
                [getattr(v, field.name) for v in values], (*path, field.name), options
            )
            for field in dataclasses.fields(first)
        }
        return dataclasses.replace(first, **fields)
    if isinstance(first, (tuple, list)):
        for i, value in enumerate(values):
            if not isinstance(value, (tuple, list)) or len(value) != len(first):
                found = (
                    f"{type(value).__name__} of length {len(value)}"
                    if isinstance(value, (tuple, list))
                    else type(value).__name__
                )
                _mismatch(i, path, f"{type(first).__name__} of length {len(first)}", found)
        columns = [_collate([v[j] for v in values], (*path, j), options) for j in range(len(first))]
        if hasattr(first, "_fields"):  # namedtuple
            return type(first)(*columns)
        return type(first)(columns) if isinstance(first, tuple) else columns
    raise TypeError(f"pad_collate: {_where(0, path)}: cannot batch {type(first).__name__}")


def _as_tensor(value: Any, i: int, path: tuple[Any, ...], first: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    _mismatch(i, path, f"{type(first).__name__} (as in sample 0)", type(value).__name__)
    raise AssertionError  # unreachable: _mismatch raises


def _stack_or_pad(tensors: list[torch.Tensor], path: tuple[Any, ...], options: _Options) -> Any:
    first = tensors[0]
    rank, dtype = first.dim(), first.dtype
    # Shape bookkeeping in plain Python, in set and zip comprehensions: with 32 small
    # tensors a per-sample Python loop costs as much as the copy itself.
    shapes = [tensor.shape for tensor in tensors]
    if {len(shape) for shape in shapes} != {rank} or {t.dtype for t in tensors} != {dtype}:
        _name_the_odd_one(tensors, path)
    columns = list(zip(*shapes, strict=True))  # columns[d]: every sample's size on dim d
    sizes = [max(column) for column in columns]
    padded_dims = [d for d, column in enumerate(columns) if min(column) != sizes[d]]
    if not padded_dims and path and path[-1] in options.pad_keys and first.dim():
        padded_dims = [0]  # all lengths equal this time, but the caller wants a mask
    if not padded_dims:
        return torch.stack(tensors)
    if options.multiple is not None:
        for d in padded_dims:
            sizes[d] = -(-sizes[d] // options.multiple) * options.multiple
    if padded_dims == [0]:
        # The common case, a batch of sequences: torch's own kernels do the work.
        lengths = torch.tensor(columns[0], device=first.device)
        data = pad_sequence(tensors, batch_first=True, padding_value=options.pad_value)
        if data.shape[1] < sizes[0]:  # rounded up to a multiple
            rounded = data.new_full((len(tensors), *sizes), options.pad_value)
            rounded[:, : data.shape[1]] = data
            data = rounded
        return Padded(data, torch.arange(sizes[0], device=first.device) < lengths[:, None], lengths)
    data = first.new_full((len(tensors), *sizes), options.pad_value)
    for row, tensor in zip(data, tensors, strict=True):
        row[tuple(slice(0, size) for size in tensor.shape)] = tensor
    lengths = torch.tensor([[s[d] for d in padded_dims] for s in shapes], device=first.device)
    mask = _mask(lengths, padded_dims, sizes)
    return Padded(data, mask, lengths.squeeze(1) if len(padded_dims) == 1 else lengths)


def _name_the_odd_one(tensors: list[torch.Tensor], path: tuple[Any, ...]) -> None:
    """Raise naming the first tensor whose rank or dtype differs from sample 0's."""
    first = tensors[0]
    for i, tensor in enumerate(tensors):
        if tensor.dim() != first.dim():
            _mismatch(
                i,
                path,
                f"a tensor of rank {first.dim()} {tuple(first.shape)} (as in sample 0)",
                f"rank {tensor.dim()} {tuple(tensor.shape)}",
            )
        if tensor.dtype != first.dtype:
            _mismatch(i, path, f"dtype {first.dtype} (as in sample 0)", f"{tensor.dtype}")


def _mask(lengths: torch.Tensor, padded_dims: list[int], sizes: list[int]) -> torch.Tensor:
    """Bool `[B, *]` true inside each sample's extent, 1-sized on unpadded dims."""
    rank = padded_dims[-1] + 1
    mask: torch.Tensor | None = None
    for j, dim in enumerate(padded_dims):
        inside = torch.arange(sizes[dim], device=lengths.device) < lengths[:, j, None]  # [B, size]
        shape = [lengths.shape[0]] + [1] * rank
        shape[dim + 1] = sizes[dim]
        inside = inside.reshape(shape)
        mask = inside if mask is None else mask & inside
    assert mask is not None
    return mask


def _where(i: int, path: tuple[Any, ...]) -> str:
    return f"sample {i}: " + "".join(f"[{key!r}]" for key in path) if path else f"sample {i}"


def _mismatch(i: int, path: tuple[Any, ...], expected: str, found: str) -> None:
    raise ValueError(f"pad_collate: {_where(i, path)}: expected {expected}, found {found}")
