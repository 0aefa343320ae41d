"""Graph: the forward against hand-written ones, the graph as a module (saved, copied,
moved), the summary, and torch.compile."""

from __future__ import annotations

import copy
import weakref

import pytest
import torch
from torch import nn

from loopline import Concat, Graph, Node, Spec
from utils import two_networks


def concat_graph() -> Graph:
    """Example 1 of the common question: two models on one input, outputs concatenated."""
    torch.manual_seed(0)
    return Graph(
        [
            Node("model_a", nn.Linear(10, 5), inputs="x", output="a"),
            Node("model_b", nn.Linear(10, 7), inputs="x", output="b"),
            Concat(["a", "b"], "ab"),
            Node("final", nn.Linear(12, 1), inputs="ab", output="y"),
        ],
        inputs={"x": Spec(("B", 10), torch.float32)},
        outputs=["y"],
    )


# ------------------------------------------------------------------ forward


def test_forward_equals_the_hand_written_forward():
    graph = concat_graph()
    a, b, final = (graph.nodes[name] for name in ("model_a", "model_b", "final"))
    x = torch.randn(32, 10)
    expected = final(torch.cat((a(x), b(x)), dim=1))
    out = graph({"x": x, "label": torch.zeros(32)})
    assert list(out) == ["y"] and torch.equal(out["y"], expected)


def test_chain_with_a_transform_between_models_equals_the_hand_loop():
    torch.manual_seed(0)
    model_a, model_b = nn.Linear(10, 5), nn.Linear(5, 2)
    graph = Graph(
        [
            Node("model_a", model_a, inputs="x", output="a"),
            Node("squash", torch.sigmoid, inputs="a"),
            Node("model_b", model_b, inputs="squash", output="y"),
        ],
        inputs=["x"],
        outputs=["y", "squash"],
    )
    x = torch.randn(8, 10)
    out = graph({"x": x})
    assert torch.equal(out["squash"], torch.sigmoid(model_a(x)))
    assert torch.equal(out["y"], model_b(torch.sigmoid(model_a(x))))


def test_keyword_inputs_and_graph_inputs_as_outputs():
    graph = Graph(
        [Node("sum", torch.add, inputs={"input": "x", "other": "z", "alpha": "k"})],
        inputs=["x", "z", "k"],
        outputs=["sum", "x"],
    )
    x, z = torch.ones(3), torch.arange(3.0)
    out = graph({"x": x, "z": z, "k": 2})
    assert out["sum"].tolist() == [1.0, 3.0, 5.0] and out["x"] is x


def test_forward_leaves_the_batch_untouched_and_names_a_missing_key():
    graph = concat_graph()
    batch = {"x": torch.randn(2, 10)}
    graph(batch)
    assert list(batch) == ["x"]
    with pytest.raises(KeyError, match="'x'"):
        graph({"image": torch.randn(2, 10)})


def test_values_no_later_node_reads_are_freed_during_the_forward():
    seen = {}

    def first(x):
        out = x + 1
        seen["first"] = weakref.ref(out)
        return out

    def last(x):
        seen["alive at last"] = seen["first"]() is not None
        return x * 2

    graph = Graph(
        [
            Node("first", first, inputs="x"),
            Node("mid", torch.neg, inputs="first"),
            Node("last", last, inputs="mid"),
        ],
        inputs=["x"],
        outputs=["last"],
    )
    graph({"x": torch.ones(3)})
    assert seen["alive at last"] is False


def test_graph_is_a_module_its_nodes_reachable_saved_and_moved():
    graph = concat_graph()
    assert isinstance(graph.nodes["model_a"], nn.Linear)
    assert graph.nodes["ab"].fn.dim == -1  # a Concat: its callable, wrapped in a module
    keys = list(graph.state_dict())
    assert keys[:2] == ["nodes.model_a.weight", "nodes.model_a.bias"] and len(keys) == 6
    assert sum(p.numel() for p in graph.parameters()) == 55 + 77 + 13
    graph.to(torch.float64)
    out = graph({"x": torch.randn(2, 10, dtype=torch.float64)})["y"]
    assert out.dtype == torch.float64


def test_deepcopy_runs_its_own_modules():
    graph = concat_graph()
    twin = copy.deepcopy(graph)
    with torch.no_grad():
        twin.nodes["final"].bias.add_(1.0)
    x = torch.randn(4, 10)
    difference = twin({"x": x})["y"] - graph({"x": x})["y"]
    assert torch.allclose(difference, torch.ones(4, 1))


def test_load_state_dict_into_a_fresh_graph_gives_the_same_outputs():
    graph, fresh = concat_graph(), concat_graph()
    with torch.no_grad():
        for p in graph.parameters():
            p.mul_(3)
    fresh.load_state_dict(graph.state_dict())
    x = torch.randn(4, 10)
    assert torch.equal(fresh({"x": x})["y"], graph({"x": x})["y"])


# ------------------------------------------------------------------ summary


def test_summary_lists_nodes_in_order_before_and_after_the_check():
    graph = concat_graph()
    graph.nodes["model_b"].requires_grad_(False)
    graph.nodes["final"].bias.requires_grad_(False)
    assert graph.summary() == "\n".join(
        [
            "Graph(x (B, 10) float32 -> y)",
            "  node     reads  writes  output  params  trainable",
            "  model_a  x      a       ?           55  yes",
            "  model_b  x      b       ?           77  no",
            "  ab       a, b   ab      ?            0  -",
            "  final    ab     y       ?           13  partly",
            "  145 parameters (67 trainable)",
            "  not checked: graph.check() runs it once on meta tensors",
        ]
    )
    assert repr(graph.check()) == "\n".join(
        [
            "Graph(x (B, 10) float32 -> y)",
            "  node     reads  writes  output           params  trainable",
            "  model_a  x      a       (B, 5) float32       55  yes",
            "  model_b  x      b       (B, 7) float32       77  no",
            "  ab       a, b   ab      (B, 12) float32       0  -",
            "  final    ab     y       (B, 1) float32       13  partly",
            "  145 parameters (67 trainable)",
            "  checked on meta tensors from specs (B=17)",
        ]
    )


def test_summary_marks_detached_inputs():
    graph, *_ = two_networks(detach=True)
    assert "  second  detached h  y" in graph.summary()


# ------------------------------------------------------------------ torch.compile


def test_compiled_graph_has_no_graph_breaks_and_matches_eager():
    torch._dynamo.reset()
    graph, _, _, x = two_networks(detach=True)
    compiled = torch.compile(graph, fullgraph=True, backend="eager")
    out = compiled({"x": x})
    eager = graph({"x": x})
    assert torch.equal(out["y"], eager["y"]) and torch.equal(out["h"], eager["h"])
    explained = torch._dynamo.explain(graph)({"x": x})
    assert explained.graph_break_count == 0 and explained.graph_count == 1
