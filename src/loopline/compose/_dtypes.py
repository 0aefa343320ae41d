"""Dtype rules that meta kernels skip, enforced while the check runs a node on meta.

On meta, `mm`/`addmm` (so `nn.Linear`, attention's projections) and the layer norm
compute an output for any mix of dtypes, while the real CPU and CUDA kernels refuse a
float64 input against float32 weights. A dispatch mode watches those operators and
raises `DtypeClash` for a mix the real kernels would refuse, so the check fails where
the real forward would; the check then confirms the verdict on real tensors if it can.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

aten = torch.ops.aten

# Every tensor argument must have the same dtype (the real kernels' "mat1 and mat2 must
# have the same dtype"; their meta kernels compute a shape for any pair).
_SAME_DTYPE = {
    aten.mm,
    aten.addmm,
    aten.bmm,
    aten.baddbmm,
    aten.mv,
    aten.addmv,
    aten.dot,
    aten._addmm_activation,
}
# Input first, then weight and bias: these may only differ by a reduced-precision input
# (float16, bfloat16) against float32 parameters, as autocast leaves them.
_NORMS = {aten.native_layer_norm: (2, 3), aten.native_group_norm: (1, 2)}
_REDUCED = (torch.float16, torch.bfloat16)


class DtypeClash(RuntimeError):
    """Tensors of an operator have dtypes its real kernels refuse to mix."""


class DtypeGuard(TorchDispatchMode):
    """Raises `DtypeClash` where a real kernel would refuse the dtypes a meta one takes."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in _SAME_DTYPE:
            tensors = [leaf for leaf in tree_leaves((args, kwargs)) if _is_tensor(leaf)]
            if len({t.dtype for t in tensors}) > 1:
                names = ", ".join(_name(t.dtype) for t in tensors)
                raise DtypeClash(f"{packet.__name__} needs one dtype, got {names}")
        elif packet in _NORMS:
            _check_norm(packet.__name__, args, _NORMS[packet])
        return func(*args, **kwargs)


def _check_norm(name: str, args: Any, positions: tuple[int, ...]) -> None:
    data = args[0]
    params = [args[i] for i in positions if i < len(args) and _is_tensor(args[i])]
    for param in params:
        same = param.dtype == data.dtype
        mixed = data.dtype in _REDUCED and param.dtype == torch.float32
        if not (same or mixed):
            raise DtypeClash(
                f"{name}: input {_name(data.dtype)} with parameters {_name(param.dtype)}"
            )


def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parameter_dtypes(fn: Any) -> set[torch.dtype]:
    """The dtypes of a module's floating parameters (empty for a function)."""
    if not isinstance(fn, torch.nn.Module):
        return set()
    return {p.dtype for p in fn.parameters() if p.dtype.is_floating_point}


def reads_indices(fn: Any) -> bool:
    """Whether a module's first layer is an embedding, whose input is integer indices."""
    if not isinstance(fn, torch.nn.Module):
        return False
    first = next((m for m in fn.modules() if not list(m.children())), None)
    return isinstance(first, (torch.nn.Embedding, torch.nn.EmbeddingBag))
