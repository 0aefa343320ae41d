"""How a graph's nodes connect: which node writes each key, and the order they run in.

All of this runs once, when a `Graph` is built, and turns wiring mistakes into errors that
name the nodes involved: two nodes with one name, two nodes writing one key, a key that
nothing writes, an output never produced, a cycle. Nodes run in dependency order; among
nodes that could run at the same point, the one declared first runs first.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Collection, Sequence

from loopline.compose.node import GraphError, Node


def execution_order(
    nodes: Sequence[Node], inputs: Collection[str], outputs: Sequence[str]
) -> list[Node]:
    """The nodes in the order they run; raises GraphError on a wiring mistake."""
    names: dict[str, Node] = {}
    writers: dict[str, Node] = {}
    for node in nodes:
        if node.name in names:
            raise GraphError(f"two nodes are named {node.name!r}", node=node.name)
        names[node.name] = node
        if node.output in inputs:
            raise GraphError(
                f"node {node.name!r} writes {node.output!r}, which is a graph input",
                node=node.name,
                key=node.output,
            )
        if node.output in writers:
            first = writers[node.output].name
            raise GraphError(
                f"nodes {first!r} and {node.name!r} both write {node.output!r}",
                node=node.name,
                key=node.output,
            )
        writers[node.output] = node
    known = [*inputs, *writers]
    for node in nodes:
        for key in node.reads:
            if key not in writers and key not in inputs:
                raise GraphError(
                    f"node {node.name!r} reads {key!r}, which is neither a graph input nor "
                    f"written by a node{_suggest(key, known)}",
                    node=node.name,
                    key=key,
                )
    for key in outputs:
        if key not in writers and key not in inputs:
            raise GraphError(
                f"output {key!r} is neither a graph input nor written by a node"
                + _suggest(key, known),
                key=key,
            )
    return _topological(nodes, writers)


def _topological(nodes: Sequence[Node], writers: dict[str, Node]) -> list[Node]:
    index = {node.name: i for i, node in enumerate(nodes)}
    # upstream[i]: the nodes whose outputs node i reads; downstream: the reverse.
    upstream = [{index[writers[k].name] for k in node.reads if k in writers} for node in nodes]
    downstream: list[list[int]] = [[] for _ in nodes]
    for i, ups in enumerate(upstream):
        for j in ups:
            downstream[j].append(i)
    waiting = [len(ups) for ups in upstream]
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for j in downstream[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(nodes):
        stuck = {i for i, count in enumerate(waiting) if count > 0}
        raise _cycle_error(nodes, upstream, stuck, writers)
    return order


def _cycle_error(
    nodes: Sequence[Node], upstream: list[set[int]], stuck: set[int], writers: dict[str, Node]
) -> GraphError:
    """Walk upstream from a node that never became ready until a node repeats: a cycle.
    (A node that never became ready reads from at least one other such node.)"""
    path = [min(stuck)]
    while True:
        step = min(j for j in upstream[path[-1]] if j in stuck)
        if step in path:
            cycle = path[path.index(step) :]
            break
        path.append(step)
    cycle.reverse()  # upstream walk, so reverse it to read in the direction data flows
    first = cycle.index(min(cycle))  # start at the node declared first
    cycle = cycle[first:] + cycle[:first]
    links = []
    for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        key = next(k for k in nodes[b].reads if k in writers and writers[k] is nodes[a])
        links.append(f"{nodes[a].name!r} writes {key!r} read by {nodes[b].name!r}")
    names = " -> ".join(repr(nodes[i].name) for i in [*cycle, cycle[0]])
    return GraphError(f"nodes form a cycle {names}: " + ", ".join(links), node=nodes[cycle[0]].name)


def _suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
