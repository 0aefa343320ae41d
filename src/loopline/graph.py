"""Models combined over a dict batch: named nodes, wired by keys, checked edge by edge.

A `Graph` is an `nn.Module` whose forward takes a dict batch, runs each `Node` (a module
or any callable) on the keys it reads, stores the result under the key it writes, and
returns the requested keys as a dict. The order is worked out once, when the graph is
built, and wiring mistakes are errors then. `check` runs the graph once on meta tensors
and checks every edge against its `Spec`, naming the node, the input and where the value
came from; forward itself checks nothing, so it costs what a hand-written forward costs.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from loopline._graph_check import Report, run_check
from loopline._graph_plan import define, plan, source
from loopline._graph_summary import summarize
from loopline._graph_wiring import GraphError, execution_order
from loopline.spec import Spec

__all__ = ["Concat", "Graph", "GraphError", "Node"]


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
        fn = _name_of(self.fn)
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


class _Function(nn.Module):
    """Holds a node's plain callable in `graph.nodes`, so every node has an entry there."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return _name_of(self.fn)


def _name_of(fn: Any) -> str:
    if isinstance(fn, nn.Module):
        return type(fn).__name__
    return getattr(fn, "__name__", None) or repr(fn)


class Graph(nn.Module):
    """Modules and functions wired by the keys of a dict batch, checked before a run.

    Forward takes the batch (a dict holding at least the graph's inputs; other keys,
    such as labels, are ignored), runs the nodes in dependency order and returns a dict
    of the requested outputs. `graph.nodes[name]` is the node's module (a plain callable
    is wrapped in one), for its own optimizer or for freezing; parameters, `.to()` and
    `state_dict()` work as for any module (to swap a node's module, build a new Graph).
    A `Padded` input (from `pad_collate`) reaches its nodes whole; declare it
    `Spec(..., padded=True)`, the shape being its `.data`'s.

    Args:
        nodes: the `Node`s, in any order.
        inputs: `{key: Spec or None}`, the batch keys the nodes read, or a list of keys.
        outputs: the keys forward returns.

    Raises:
        GraphError: two nodes share a name or an output key, a node reads a key that is
            no input and no node's output, an output is never produced, or nodes form a
            cycle; the message names the nodes and keys.

    Example:
        >>> import torch, loopline
        >>> from torch import nn
        >>> graph = loopline.Graph(
        ...     [
        ...         loopline.Node("a", nn.Linear(10, 5), inputs="x", output="feat_a"),
        ...         loopline.Node("b", nn.Linear(10, 7), inputs="x", output="feat_b"),
        ...         loopline.Concat(["feat_a", "feat_b"], "feat"),
        ...         loopline.Node("head", nn.Linear(12, 1), inputs="feat", output="y"),
        ...     ],
        ...     inputs={"x": loopline.Spec(("B", 10), torch.float32)},
        ...     outputs=["y"],
        ... )
        >>> graph({"x": torch.randn(32, 10)})["y"].shape
        torch.Size([32, 1])
    """

    def __init__(
        self,
        nodes: Sequence[Node],
        *,
        inputs: Mapping[str, Spec | None] | Sequence[str],
        outputs: str | Sequence[str],
    ) -> None:
        super().__init__()
        self.inputs = dict(inputs) if isinstance(inputs, Mapping) else dict.fromkeys(inputs)
        self.outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
        self.order = tuple(execution_order(list(nodes), self.inputs, self.outputs))
        self.nodes = nn.ModuleDict()
        for node in nodes:
            module = node.fn if isinstance(node.fn, nn.Module) else _Function(node.fn)
            try:
                self.nodes[node.name] = module
            except KeyError:  # ModuleDict's own attributes: "keys", "update", "train"...
                raise GraphError(
                    f"node name {node.name!r} is taken by nn.ModuleDict; rename the node",
                    node=node.name,
                ) from None
        self.steps = plan(self.order, self.outputs)
        self._fns = [step.fn for step in self.steps]
        self._forward = define(source(self.steps, list(self.inputs), self.outputs))
        self._report: Report | None = None

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Run the nodes on `batch`; returns `{key: value}` for each of the outputs."""
        return self._forward(self._fns, batch)

    def check(
        self, batch: Mapping[str, Any] | None = None, *, sizes: Mapping[str, int] | None = None
    ) -> Graph:
        """Run the graph once on meta tensors and check every edge: the pre-flight check.

        Inputs come from `batch` (real values are checked against their Specs, value
        checks included, then replaced by meta tensors) or from their Specs. Each node's
        input Specs are checked, then it runs on meta tensors: no memory, no compute. A
        node that cannot (`.item()`, data-dependent shapes) runs once on real tensors of
        those shapes, filled with ones, and the summary says so. Symbols without a size
        get odd primes (B=17, T=41, ...), shown by name in messages.

        Args:
            batch: `{key: tensor, Padded or Spec}` for some or all of the inputs.
            sizes: sizes for symbols, e.g. `{"T": 64}` for a model with a fixed length.

        Returns:
            The graph, so `print(graph.check())` shows the checked summary.

        Raises:
            GraphError: the first broken contract: node, input key, expected, actual and
                source. An error inside a node is chained (`raise ... from`).

        Example:
            >>> import torch, loopline
            >>> graph = loopline.Graph(
            ...     [loopline.Node("head", torch.nn.Linear(512, 8), inputs="feat")],
            ...     inputs={"feat": loopline.Spec(("B", 2048))},
            ...     outputs="head",
            ... )
            >>> try:
            ...     graph.check()
            ... except loopline.GraphError as error:
            ...     print(error)  # doctest: +NORMALIZE_WHITESPACE
            node 'head' input 'feat': expected (..., 512), got (B, 2048) float32 (from the
            batch): dimension 1 is 2048, expected 512; its nn.Linear has in_features=512
        """
        self._report = run_check(list(self.order), self.inputs, batch, sizes)
        return self

    def summary(self) -> str:
        """A table of the nodes in execution order: what each reads and writes, its output
        shape and dtype (once checked), its parameter count and whether it trains.
        `print(graph)` shows it too.

        Example:
            >>> import torch, loopline
            >>> graph = loopline.Graph(
            ...     [
            ...         loopline.Node("model_a", torch.nn.Linear(10, 5), inputs="x"),
            ...         loopline.Node("squash", torch.sigmoid, inputs="model_a"),
            ...         loopline.Node("model_b", torch.nn.Linear(5, 2), inputs="squash"),
            ...     ],
            ...     inputs={"x": loopline.Spec(("B", 10), torch.float32)},
            ...     outputs="model_b",
            ... )
            >>> print(graph.check().summary())
            Graph(x (B, 10) float32 -> model_b)
              node     reads    writes   output          params  trainable
              model_a  x        model_a  (B, 5) float32      55  yes
              squash   model_a  squash   (B, 5) float32       0  -
              model_b  squash   model_b  (B, 2) float32      12  yes
              67 parameters (67 trainable)
              checked on meta tensors from specs (B=17)
        """
        return summarize(self, self._report)

    def __repr__(self) -> str:
        return self.summary()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {key: value for key, value in state.items() if key != "_forward"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._forward = define(source(self.steps, list(self.inputs), self.outputs))
