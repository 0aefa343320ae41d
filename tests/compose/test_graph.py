"""Graph: wiring errors at construction, the forward against hand-written ones, detach
edges against hand-computed gradients, the summary, and torch.compile."""

from __future__ import annotations

import copy
import weakref

import pytest
import torch
from torch import nn

import loopline
from loopline import Concat, Graph, GraphError, Node, Spec

MSE = nn.MSELoss()


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


# ------------------------------------------------------------------ wiring errors


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


def test_node_refuses_detach_or_specs_for_keys_it_does_not_read():
    with pytest.raises(GraphError, match=r"node 'b' names 'z' in detach or specs, but reads"):
        Node("b", torch.relu, inputs="x", detach=["z"])
    with pytest.raises(GraphError, match=r"names 'y' in detach or specs"):
        Node("b", torch.relu, inputs="x", specs={"y": Spec(("B",))})


def test_node_refuses_bad_names_and_keyword_names():
    with pytest.raises(GraphError, match=r"without '\.'"):
        Node("enc.oder", torch.relu, inputs="x")
    with pytest.raises(GraphError, match="'lambda' is not a keyword name"):
        Node("f", torch.add, inputs={"lambda": "x"})


def test_nodes_run_in_dependency_order_whatever_the_declaration_order():
    graph = Graph(
        [relu("c", ["b"], "y"), relu("b", "a", "b"), relu("a", "in", "a"), relu("d", "in", "d")],
        inputs=["in"],
        outputs=["y", "d"],
    )
    assert [node.name for node in graph.order] == ["a", "b", "c", "d"]


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


# ------------------------------------------------------------------ detach edges


def two_networks(detach):
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    second = nn.Linear(4, 2)
    graph = Graph(
        [
            Node("first", first, inputs="x", output="h"),
            Node("second", second, inputs="h", output="y", detach=detach),
        ],
        inputs=["x"],
        outputs=["h", "y"],
    )
    return graph, first, second, torch.randn(16, 6)


def test_detach_edge_stops_gradient_into_the_upstream_node():
    graph, first, second, x = two_networks(detach=True)
    graph({"x": x})["y"].sum().backward()
    assert all(p.grad is None for p in first.parameters())
    # d(sum y)/dW = sum over the batch of h, d/db = the batch size: by hand.
    h = first(x).detach()
    assert torch.allclose(second.weight.grad, h.sum(0).expand(2, 4), rtol=0, atol=1e-6)
    assert torch.equal(second.bias.grad, torch.full((2,), 16.0))


def test_detach_edge_matches_the_hand_written_two_network_step():
    """Each network trained by its own loss, each with its own optimizer: exact grads."""
    graph, first, second, x = two_networks(detach="h")
    features, labels = torch.randn(16, 4), torch.randn(16, 2)
    out = graph({"x": x})
    (MSE(out["h"], features) + MSE(out["y"], labels)).backward()
    got = [p.grad.clone() for p in graph.parameters()]

    graph.zero_grad(set_to_none=True)
    h = first(x)
    MSE(h, features).backward()  # the first network's loss alone
    MSE(second(h.detach()), labels).backward()  # the second's, on fixed inputs
    expected = [p.grad for p in graph.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))

    first_optimizer = torch.optim.SGD(graph.nodes["first"].parameters(), lr=0.1)
    second_optimizer = torch.optim.SGD(graph.nodes["second"].parameters(), lr=0.1)
    before = second.weight.detach().clone()
    second_optimizer.step()
    assert not torch.equal(second.weight, before)
    assert first_optimizer.param_groups[0]["params"][0] is first[0].weight


def test_without_detach_the_second_loss_reaches_the_first_network():
    graph, first, _, x = two_networks(detach=False)
    graph({"x": x})["y"].sum().backward()
    assert all(p.grad is not None and bool(p.grad.any()) for p in first.parameters())


def test_detaching_one_of_two_inputs_keeps_the_other_edge():
    torch.manual_seed(0)
    left, right = nn.Linear(3, 2), nn.Linear(3, 2)
    graph = Graph(
        [
            Node("left", left, inputs="x", output="l"),
            Node("right", right, inputs="x", output="r"),
            Node("mix", torch.mul, inputs=["l", "r"], output="y", detach="l"),
        ],
        inputs=["x"],
        outputs=["y"],
    )
    x = torch.randn(5, 3)
    graph({"x": x})["y"].sum().backward()
    assert left.weight.grad is None
    # d(sum l * r)/dW_right = l^T x, with l a constant.
    expected = left(x).detach().T @ x
    assert torch.allclose(right.weight.grad, expected, rtol=0, atol=1e-6)


def test_detach_reaches_the_data_of_a_padded_input():
    seen = {}

    def keep(tokens):
        seen["padded"] = tokens
        return tokens.data.sum(dim=1)

    embed = nn.Linear(1, 4)
    graph = Graph(
        [
            Node("embed", lambda p: loopline.Padded(embed(p.data), p.mask, p.lengths), inputs="t"),
            Node("pool", keep, inputs="embed", detach=True),
        ],
        inputs=["t"],
        outputs=["pool"],
    )
    batch = loopline.pad_collate([torch.ones(3, 1), torch.ones(2, 1)])
    out = graph({"t": batch})["pool"]
    assert not out.requires_grad and not seen["padded"].data.requires_grad
    assert seen["padded"].mask is not None and seen["padded"].lengths.tolist() == [3, 2]


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
