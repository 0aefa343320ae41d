"""Contracts for tensors: a shape with named dimensions, a dtype, optionally a value check.

A `Spec` says what a value must look like, e.g. `Spec(("B", "T", 128), torch.float32)`:
ints are exact sizes, strings are symbols that take one size wherever they appear in one
check (every "B" of a batch is the same B), None is any size and `...` any number of
dimensions. `Spec.mismatch` compares a value with it and says how they differ. A `Padded`
batch is described by its `.data`, and only a `Spec(..., padded=True)` accepts one, so a
text batch that `pad_collate` stacked instead of padding is caught too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import EllipsisType
from typing import Any, TypeAlias

import torch
from torch import nn

from loopline.batching.padded import Padded

Dim: TypeAlias = int | str | EllipsisType | None

# Sizes given to symbols when values are made from specs: odd primes far apart, so that
# a dimension mixed up with another (B with T, T with T - 2 after a convolution) shows,
# and so a size seen in an output can be named back as its symbol.
SYNTHETIC_SIZES = (17, 41, 67, 97, 127, 157, 191, 223, 257, 293, 331, 367, 401, 439)


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a tensor (or a `Padded` batch's `.data`) must look like.

    Args:
        shape: sizes; an int is exact, a str a symbol (one size per check), None any
            size, `...` any number of dimensions (at most once).
        dtype: the dtype (a `torch.dtype` or its name: "float32", "torch.int64",
            "long"), or None for any.
        padded: the value is a `Padded`; the shape and dtype describe its `.data`. (One
            made up from the spec is padded along dimension 1, as sequences are.)
        bounds: `(low, high)`: every value must lie in it (checked on real values only).
        check: a predicate on the tensor, e.g. `lambda x: bool(x.std() < 10)`, named by
            its `__name__` when it fails (checked on real values only).

    Example:
        >>> import torch, loopline
        >>> spec = loopline.Spec(("B", 3, 32, 32), torch.float32, bounds=(0, 1))
        >>> print(spec)
        (B, 3, 32, 32) float32 in [0, 1]
        >>> print(spec.mismatch(torch.rand(8, 32, 32, 3)))  # doctest: +NORMALIZE_WHITESPACE
        expected (B, 3, 32, 32) float32 in [0, 1], got (8, 32, 32, 3) float32:
        dimension 1 is 32, expected 3 (3 is dimension 3: a channels-last layout?)
        >>> print(spec.mismatch(torch.rand(8, 3, 32, 32)))
        None
    """

    shape: tuple[Dim, ...]
    dtype: torch.dtype | str | None = None
    _: dataclasses.KW_ONLY
    padded: bool = False
    bounds: tuple[float, float] | None = None
    check: Callable[[torch.Tensor], bool] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "dtype", _as_dtype(self.dtype))
        for dim in self.shape:
            if not (dim is None or dim is ... or isinstance(dim, (int, str))) or dim == "":
                raise ValueError(f"Spec: a dimension is an int, a name, None or ..., got {dim!r}")
            if isinstance(dim, int) and dim < 0:
                raise ValueError(f"Spec: sizes are >= 0, got {dim}")
        if sum(dim is ... for dim in self.shape) > 1:
            raise ValueError(f"Spec: at most one ... in a shape, got {self.shape}")

    def __str__(self) -> str:
        text = f"{format_shape(self.shape)} {_dtype_name(_as_dtype(self.dtype))}".rstrip()
        if self.bounds is not None:
            text += f" in [{self.bounds[0]:g}, {self.bounds[1]:g}]"
        return ("Padded " if self.padded else "") + text

    def mismatch(self, value: Any, sizes: dict[str, int] | None = None) -> str | None:
        """How `value` breaks this spec, or None if it meets it.

        Args:
            value: a tensor, or a `Padded` for a padded spec.
            sizes: symbol sizes already bound; symbols first seen here are added to it.

        Returns:
            None, or `"expected <spec>, got <value>: <what differs>"`.
        """
        return check_value(self, value, {} if sizes is None else sizes)


def _as_dtype(dtype: Any) -> torch.dtype | None:
    """A dtype from a `torch.dtype`, None, or a name such as "float32" or "torch.long"."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        found = getattr(torch, dtype.strip().removeprefix("torch."), None)
        if isinstance(found, torch.dtype):
            return found
        raise ValueError(
            f"Spec: dtype {dtype!r} is not a torch dtype name; use one such as 'float32', "
            "'float64', 'int64' or torch.float32"
        )
    raise TypeError(
        f"Spec: dtype must be a torch.dtype, its name or None, got {type(dtype).__name__} {dtype!r}"
    )


def check_value(
    spec: Spec,
    value: Any,
    sizes: dict[str, int],
    origins: dict[str, str] | None = None,
    here: str = "",
    names: Mapping[int, str] | None = None,
    source: str = "",
) -> str | None:
    """`Spec.mismatch`, telling where each symbol was bound: a symbol bound by this value
    gets `origins[symbol] = here`, and a clash names the origin of the earlier binding.
    `names` maps synthetic sizes back to their symbols when describing the value, and
    `source` says where the value came from ("node 'encoder'")."""
    got = describe(value, names) + (f" (from {source})" if source else "")

    def fail(why: str) -> str:
        return f"expected {spec}, got {got}" + (f": {why}" if why else "")

    if spec.padded != isinstance(value, Padded):
        if spec.padded:  # the pitfall: a batch whose samples happened to be equally long
            return fail("") + "; pad_collate stacks equal lengths unless the key is in pad_keys"
        return fail("") + "; read its .data, or declare Spec(..., padded=True)"
    tensor = value.data if isinstance(value, Padded) else value
    if not isinstance(tensor, torch.Tensor):
        return fail("")
    shape = tuple(tensor.shape)
    bound: dict[str, int] = {}
    why = _match_shape(spec.shape, shape, sizes, bound, origins or {})
    if why is not None:
        return fail(why)
    if spec.dtype is not None and tensor.dtype != spec.dtype:
        return fail(f"dtype is {_dtype_name(tensor.dtype)}")
    if isinstance(value, Padded) and (why := _padded_problem(value)):
        return fail(why)
    if tensor.device.type != "meta" and (why := _value_problem(spec, tensor)):
        return fail(why)
    sizes.update(bound)
    if origins is not None:
        origins.update({symbol: here for symbol in bound if symbol not in origins})
    return None


def _match_shape(
    expected: tuple[Dim, ...],
    shape: tuple[int, ...],
    sizes: Mapping[str, int],
    bound: dict[str, int],
    origins: Mapping[str, str],
) -> str | None:
    """None if `shape` fits `expected`, binding new symbols into `bound`; else why not."""
    if ... in expected:
        cut = expected.index(...)
        head, tail = expected[:cut], expected[cut + 1 :]
        if len(shape) < len(head) + len(tail):
            return f"{len(shape)} dimensions, expected at least {len(head) + len(tail)}"
        positions = [*range(len(head)), *range(len(shape) - len(tail), len(shape))]
        wanted = [*head, *tail]
    elif len(shape) != len(expected):
        return f"{len(shape)} dimensions, expected {len(expected)}"
    else:
        positions, wanted = list(range(len(shape))), list(expected)
    expected_at = dict(zip(positions, wanted, strict=True))
    for position, want in expected_at.items():
        size = shape[position]
        if isinstance(want, int) and want != size:
            why = f"dimension {position} is {size}, expected {want}"
            # The size may be there, in another place: say where, it is the likely mistake.
            moved = [q for q, s in enumerate(shape) if s == want and expected_at.get(q) != want]
            if moved:
                layout = "channels-last" if moved[-1] == len(shape) - 1 else "transposed"
                why += f" ({want} is dimension {moved[-1]}: a {layout} layout?)"
            return why
        if isinstance(want, str):
            known = bound.get(want, sizes.get(want))
            if known is None:
                bound[want] = size
            elif known != size:
                origin = f" in {origins[want]}" if want in origins and want not in bound else ""
                return f"dimension {position} is {size}, but {want} is {known}{origin}"
    return None


def _padded_problem(value: Padded) -> str | None:
    if value.mask.dtype != torch.bool:
        return f"its mask is {_dtype_name(value.mask.dtype)}, expected bool"
    if (
        value.mask.shape[:1] != value.data.shape[:1]
        or value.lengths.shape[:1] != value.data.shape[:1]
    ):
        mask, lengths = tuple(value.mask.shape), tuple(value.lengths.shape)
        return f"its mask {mask} or lengths {lengths} do not match its batch size"
    return None


def _value_problem(spec: Spec, tensor: torch.Tensor) -> str | None:
    if spec.bounds is not None and tensor.numel():
        low, high = spec.bounds
        least, most = tensor.min().item(), tensor.max().item()
        if least < low or most > high:
            return f"values lie in [{least:.4g}, {most:.4g}], outside [{low:g}, {high:g}]"
    if spec.check is not None and not spec.check(tensor):
        return f"values fail check {getattr(spec.check, '__name__', repr(spec.check))!r}"
    return None


def implied_spec(fn: Any) -> tuple[Spec, str] | None:
    """The Spec of the input a module's first layer requires, with the attribute that
    says so (`"its nn.Linear has in_features=30"`), or None when it cannot be read off.
    Used to explain an error raised inside the module."""
    if type(fn) is nn.Sequential and len(fn):
        return implied_spec(fn[0])
    name = f"its nn.{type(fn).__name__}"
    if isinstance(fn, nn.Linear) and fn.in_features > 0:
        return Spec((..., fn.in_features)), f"{name} has in_features={fn.in_features}"
    if isinstance(fn, nn.modules.conv._ConvNd) and fn.in_channels > 0:
        spatial = (None,) * len(fn.kernel_size)
        return Spec((..., fn.in_channels, *spatial)), f"{name} has in_channels={fn.in_channels}"
    if isinstance(fn, nn.LayerNorm):
        shape = tuple(fn.normalized_shape)
        return Spec((..., *shape)), f"{name} has normalized_shape={shape}"
    if isinstance(fn, nn.RNNBase):
        return Spec((..., fn.input_size)), f"{name} has input_size={fn.input_size}"
    return None


def describe(value: Any, names: Mapping[int, str] | None = None) -> str:
    """A value as errors and summaries show it: `(B, 512) float32`, `Padded (B, T) int64`.

    Args:
        value: a tensor, a `Padded`, a tuple, list or dict of them, or anything else.
        names: sizes to show as symbols, e.g. `{17: "B"}`.

    Example:
        >>> import torch
        >>> from loopline.compose.spec import describe
        >>> describe(torch.zeros(17, 512), {17: "B"})
        '(B, 512) float32'
        >>> describe((torch.zeros(2, dtype=torch.int64), None))
        'tuple((2,) int64, None)'
    """
    if isinstance(value, Padded):
        return "Padded " + describe(value.data, names)
    if isinstance(value, torch.Tensor):
        shape = tuple((names or {}).get(size, size) for size in value.shape)
        return f"{format_shape(shape)} {_dtype_name(value.dtype)}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({', '.join(describe(v, names) for v in value)})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v, names)}" for k, v in value.items()) + "}"
    return "None" if value is None else type(value).__name__


def format_shape(shape: tuple[Any, ...]) -> str:
    """`(B, 512)`; a 1-d shape is `(B,)`, as Python writes tuples; None shows as `?`."""
    parts = ["?" if d is None else "..." if d is ... else str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _dtype_name(dtype: torch.dtype | None) -> str:
    return "" if dtype is None else str(dtype).removeprefix("torch.")


def synthesize(
    spec: Spec, sizes: dict[str, int], avoid: set[int], device: torch.device | str = "meta"
) -> torch.Tensor | Padded:
    """A value that meets `spec` (its contents are not set). A symbol without a size in
    `sizes` gets the first of `SYNTHETIC_SIZES` not in `avoid` (and it is added to both),
    a None dimension a size of its own, `...` no dimensions. A padded spec gets a full
    mask and lengths."""
    shape = []
    for dim in spec.shape:
        if isinstance(dim, int):
            shape.append(dim)
        elif isinstance(dim, str) or dim is None:
            size = sizes.get(dim) if isinstance(dim, str) else None
            if size is None:
                size = next(s for s in SYNTHETIC_SIZES if s not in avoid)
                avoid.add(size)
                if isinstance(dim, str):
                    sizes[dim] = size
            shape.append(size)
    dtype = _as_dtype(spec.dtype) or torch.get_default_dtype()
    data = torch.empty(shape, dtype=dtype, device=device)
    if not spec.padded:
        return data
    batch, length = [*shape, 1, 1][:2]
    mask = torch.ones(batch, length, dtype=torch.bool, device=device)
    return Padded(data, mask, torch.full((batch,), length, dtype=torch.int64, device=device))
