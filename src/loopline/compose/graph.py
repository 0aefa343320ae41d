"""Models combined over a dict batch: named nodes, wired by keys, checked edge by edge.

A `Graph` is an `nn.Module` whose forward takes a dict batch, runs each `Node` (a module
or any callable) on the keys it reads, stores the result under the key it writes, and
returns the requested keys as a dict. The order is worked out once, when the graph is
built, and wiring mistakes are errors then. `check` runs the graph once on meta tensors
and checks every edge against its `Spec`, naming the node, the input and where the value
came from; forward itself checks nothing, so it costs what a hand-written forward costs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from loopline.compose._check import Report, run_check
from loopline.compose._plan import define, plan, source
from loopline.compose._summary import summarize
from loopline.compose._wiring import execution_order
from loopline.compose.node import GraphError, Node, name_of
from loopline.compose.spec import Spec

__all__ = ["Graph"]


class _Function(nn.Module):
    """Holds a node's plain callable in `graph.nodes`, so every node has an entry there."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return name_of(self.fn)


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
        return summarize(self.inputs, self.order, self.nodes, self.outputs, self._report)

    def __repr__(self) -> str:
        return self.summary()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {key: value for key, value in state.items() if key != "_forward"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._forward = define(source(self.steps, list(self.inputs), self.outputs))
