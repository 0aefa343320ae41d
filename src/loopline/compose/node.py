"""The parts a `Graph` is built from: `Node`, `Concat`, and the `GraphError` they raise.

A node is a callable with the batch keys it reads and the key it writes; nothing here
knows about graphs, so the graph's wiring, plan, check and summary all build on this
module, and none of them needs the `Graph` itself.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from loopline.compose.spec import Spec


class GraphError(ValueError):
    """A graph's wiring or one of its contracts is broken.

    Attributes:
        node: the name of the node at fault, or None for a graph input or output.
        key: the key involved, or None.

    Example:
        >>> import torch, loopline
        >>> nodes = [loopline.Node("act", torch.relu, inputs="x", output="h")]
        >>> try:
        ...     loopline.Graph(nodes, inputs=["x"], outputs=["y"])
        ... except loopline.GraphError as error:
        ...     print(f"{error.key}: {error}")
        y: output 'y' is neither a graph input nor written by a node (known keys: x, h)
    """

    def __init__(self, message: str, *, node: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.node, self.key = node, key


class Node:
    """One step of a `Graph`: call `fn` on the values of some keys, store the result.

    Args:
        name: the node's name, used in errors and as `graph.nodes[name]`.
        fn: an `nn.Module` or any callable (`torch.sigmoid`, a lambda).
        inputs: the key it reads, a list of keys (passed positionally, in order), or a
            dict from `fn`'s keyword names to keys.
        output: the key it writes; the node's name by default.
        specs: `{key: Spec}` contracts for some of its inputs, checked by `Graph.check`.
        detach: True to detach every input (no gradient flows back through this node
            into whatever produced them), or the input keys to detach.

    Example:
        >>> import torch, loopline
        >>> loopline.Node("encoder", torch.nn.Linear(10, 4), inputs="x", output="feat")
        Node('encoder', Linear, inputs='x', output='feat')
        >>> loopline.Node("squash", torch.sigmoid, inputs="feat", detach=True)
        Node('squash', sigmoid, inputs='feat', output='squash', detach=['feat'])
    """

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        inputs: str | Sequence[str] | Mapping[str, str],
        output: str | None = None,
        specs: Mapping[str, Spec] | None = None,
        detach: bool | str | Sequence[str] = False,
    ) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise GraphError(f"a node's name is a non-empty str without '.', got {name!r}")
        if not callable(fn):
            raise GraphError(f"node {name!r}: fn must be callable, got {type(fn).__name__}")
        self.name, self.fn, self.output = name, fn, name if output is None else output
        self.kwargs: dict[str, str] = dict(inputs) if isinstance(inputs, Mapping) else {}
        self.args: tuple[str, ...] = (
            (inputs,) if isinstance(inputs, str) else () if self.kwargs else tuple(inputs)
        )
        self.reads: tuple[str, ...] = (*self.args, *self.kwargs.values())
        for word in self.kwargs:
            if not isinstance(word, str) or not word.isidentifier() or keyword.iskeyword(word):
                raise GraphError(f"node {name!r}: {word!r} is not a keyword name", node=name)
        self.specs: dict[str, Spec] = dict(specs or {})
        keys = {detach} if isinstance(detach, str) else set(self.reads) if detach is True else set()
        keys |= set(detach) if not isinstance(detach, (bool, str)) else set()
        for key in [*keys, *self.specs]:
            if key not in self.reads:
                raise GraphError(
                    f"node {name!r} names {key!r} in detach or specs, but reads only "
                    f"{list(self.reads)}",
                    node=name,
                    key=key,
                )
        self.detach: frozenset[str] = frozenset(keys)

    def __repr__(self) -> str:
        inputs = self.kwargs or (self.args[0] if len(self.args) == 1 else list(self.args))
        extra = f", detach={sorted(self.detach)}" if self.detach else ""
        fn = name_of(self.fn)
        return f"Node({self.name!r}, {fn}, inputs={inputs!r}, output={self.output!r}{extra})"


class _Cat:
    """`torch.cat` of its arguments along one dimension (the callable of a `Concat`)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.cat(tensors, dim=self.dim)

    def __repr__(self) -> str:
        return f"cat(dim={self.dim})"


class Concat(Node):
    """A node that joins parallel branches: `torch.cat` of its inputs along `dim`.

    Args:
        inputs: the keys to concatenate, in order.
        output: the key it writes (also its name unless `name` is given).
        dim: the dimension to concatenate along.
        name: the node's name.

    Example:
        >>> import loopline
        >>> loopline.Concat(["text_feat", "image_feat"], "features")
        Node('features', cat(dim=-1), inputs=['text_feat', 'image_feat'], output='features')
    """

    def __init__(
        self, inputs: Sequence[str], output: str, dim: int = -1, *, name: str | None = None
    ) -> None:
        super().__init__(name or output, _Cat(dim), inputs=list(inputs), output=output)


def name_of(fn: Any) -> str:
    if isinstance(fn, nn.Module):
        return type(fn).__name__
    return getattr(fn, "__name__", None) or repr(fn)
