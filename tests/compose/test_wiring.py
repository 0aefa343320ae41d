"""Graph wiring: mistakes in how nodes connect are errors at construction, naming the nodes
and keys involved, and nodes run in dependency order."""

from __future__ import annotations

import pytest
import torch

from loopline import Graph, GraphError, Node


def relu(name: str, reads: str | list[str], writes: str) -> Node:
    return Node(name, torch.relu, inputs=reads, output=writes)


@pytest.mark.parametrize(
    ("nodes", "outputs", "message", "node", "key"),
    [
        (
            [relu("a", "y", "x"), relu("b", "x", "y")],
            ["y"],
            "nodes form a cycle 'a' -> 'b' -> 'a': 'a' writes 'x' read by 'b', "
            "'b' writes 'y' read by 'a'",
            "a",
            None,
        ),
        (
            [
                relu("s", "in", "u"),
                relu("a", ["u", "z"], "x"),
                relu("b", "x", "y"),
                relu("c", "y", "z"),
            ],
            ["z"],
            "nodes form a cycle 'a' -> 'b' -> 'c' -> 'a': 'a' writes 'x' read by 'b', "
            "'b' writes 'y' read by 'c', 'c' writes 'z' read by 'a'",
            "a",
            None,
        ),
        (
            [relu("a", "a", "a")],
            ["a"],
            "nodes form a cycle 'a' -> 'a': 'a' writes 'a' read by 'a'",
            "a",
            None,
        ),
        (
            [relu("a", "in", "feat"), relu("b", "feet", "y")],
            ["y"],
            "node 'b' reads 'feet', which is neither a graph input nor written by a node "
            "(did you mean 'feat'?)",
            "b",
            "feet",
        ),
        (
            [relu("a", "in", "feat"), relu("b", "in", "feat")],
            ["feat"],
            "nodes 'a' and 'b' both write 'feat'",
            "b",
            "feat",
        ),
        (
            [relu("a", "in", "feat")],
            ["logits"],
            "output 'logits' is neither a graph input nor written by a node (known keys: in, feat)",
            None,
            "logits",
        ),
        (
            [relu("a", "in", "in")],
            ["in"],
            "node 'a' writes 'in', which is a graph input",
            "a",
            "in",
        ),
        (
            [relu("a", "in", "x"), relu("a", "x", "y")],
            ["y"],
            "two nodes are named 'a'",
            "a",
            None,
        ),
        (
            [relu("update", "in", "x")],
            ["x"],
            "node name 'update' is taken by nn.ModuleDict; rename the node",
            "update",
            None,
        ),
    ],
    ids=[
        "cycle",
        "long-cycle",
        "self-loop",
        "unknown-key",
        "two-writers",
        "no-output",
        "writes-input",
        "same-name",
        "reserved-name",
    ],
)
def test_wiring_mistakes_are_errors_at_construction(nodes, outputs, message, node, key):
    with pytest.raises(GraphError) as error:
        Graph(nodes, inputs=["in"], outputs=outputs)
    assert str(error.value) == message
    assert (error.value.node, error.value.key) == (node, key)


def test_nodes_run_in_dependency_order_whatever_the_declaration_order():
    graph = Graph(
        [relu("c", ["b"], "y"), relu("b", "a", "b"), relu("a", "in", "a"), relu("d", "in", "d")],
        inputs=["in"],
        outputs=["y", "d"],
    )
    assert [node.name for node in graph.order] == ["a", "b", "c", "d"]
