"""A graph's forward, planned once: which callable runs on which keys, then as Python code.

A loop over the plan that looks every key up in a dict costs about half a microsecond a
node, which is 5 to 10% of a small model's forward. So, as `torch.fx` does, the plan is
written out once as the function a person would write, one line per node with locals for
values, `del` where a value is no longer needed, and compiled with `exec`. Its callables
come in as an argument, so `deepcopy` and `load_state_dict` see the graph's own modules;
`torch.compile` traces it like any other function.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from loopline._tree import map_tensors
from loopline.compose.node import Node


class Step(NamedTuple):
    """One node's part of the forward."""

    name: str
    fn: Callable[..., Any]
    reads: tuple[str, ...]  # keys, positional first, then the keyword ones
    keywords: tuple[str, ...]  # the keyword names of the last len(keywords) keys
    output: str
    detach: tuple[bool, ...]  # per key read
    dead: tuple[str, ...]  # keys that no later node reads and that are not outputs


def plan(order: Sequence[Node], outputs: Sequence[str]) -> list[Step]:
    """The steps of the forward, in execution order."""
    last_read = {node.output: i for i, node in enumerate(order)}
    for i, node in enumerate(order):
        last_read.update(dict.fromkeys(node.reads, i))
    return [
        Step(
            node.name,
            node.fn,
            node.reads,
            tuple(node.kwargs),
            node.output,
            tuple(key in node.detach for key in node.reads),
            tuple(n.output for n in order if last_read[n.output] == i and n.output not in outputs),
        )
        for i, node in enumerate(order)
    ]


def source(steps: Sequence[Step], inputs: Sequence[str], outputs: Sequence[str]) -> str:
    """The forward as Python source: `forward(fns, batch)`, `fns[i]` being step i's callable."""
    local: dict[str, str] = {}  # key -> its local variable
    lines = ["def forward(fns, batch):"]
    if steps:
        lines.append(f"    {''.join(f'f{i}, ' for i in range(len(steps)))}= fns")
    for key in inputs:
        local[key] = f"v{len(local)}"
        lines.append(f"    {local[key]} = batch[{key!r}]")
    for i, step in enumerate(steps):
        args = [
            f"detach({local[key]})" if detach else local[key]
            for key, detach in zip(step.reads, step.detach, strict=True)
        ]
        cut = len(args) - len(step.keywords)
        args[cut:] = [f"{name}={arg}" for name, arg in zip(step.keywords, args[cut:], strict=True)]
        local[step.output] = f"v{len(local)}"
        call = f"    {local[step.output]} = f{i}({', '.join(args)})"
        lines.append(f"{call}  # node {step.name!r} writes {step.output!r}")
        if step.dead:
            lines.append(f"    del {', '.join(local[key] for key in step.dead)}")
    lines.append("    return {" + ", ".join(f"{key!r}: {local[key]}" for key in outputs) + "}")
    return "\n".join(lines) + "\n"


def define(text: str) -> Callable[..., dict[str, Any]]:
    """Compile the source of `source`; tracebacks show its lines."""
    filename = f"<loopline.Graph forward {abs(hash(text)):x}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace: dict[str, Any] = {"detach": detach}
    exec(compile(text, filename, "exec"), namespace)
    return namespace["forward"]


def detach(value: Any) -> Any:
    """`value.detach()`, through a `Padded` and tuples, lists or dicts of tensors."""
    return map_tensors(torch.Tensor.detach, value)
