"""Graph.check: every kind of broken contract on an edge, with the exact message, caught
before a real batch runs; a chain of Linear layers fails at exactly its wrong layer."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from loopline import Concat, Graph, GraphError, Node, Spec


def fuse_graph(image_out: int = 512) -> Graph:
    """The issue's example: an image encoder whose width the fusion node does not expect."""
    return Graph(
        [
            Node("text_encoder", nn.Embedding(100, 256), inputs="tokens", output="text_seq"),
            Node("pool", lambda x: x.mean(dim=1), inputs="text_seq", output="text_feat"),
            Node("image_encoder", nn.Linear(3 * 8 * 8, image_out), inputs="pixels"),
            Concat(["text_feat", "image_encoder"], "joint", name="fuse"),
            Node("head", nn.Linear(256 + 512, 4), inputs="joint", output="logits"),
        ],
        inputs={
            "tokens": Spec(("B", "T"), torch.int64),
            "pixels": Spec(("B", 3 * 8 * 8), torch.float32),
        },
        outputs=["logits"],
    )


# ------------------------------------------------------------------ contracts on edges


def test_node_spec_names_node_input_expected_actual_and_source():
    graph = Graph(
        [
            Node("image_encoder", nn.Linear(10, 2048), inputs="image", output="image_feat"),
            Node(
                "fuse",
                nn.Linear(512, 8),
                inputs="image_feat",
                specs={"image_feat": Spec(("B", 512), torch.float32)},
            ),
        ],
        inputs={"image": Spec(("B", 10), torch.float32)},
        outputs=["fuse"],
    )
    with pytest.raises(GraphError) as error:
        graph.check()
    assert str(error.value) == (
        "node 'fuse' input 'image_feat': expected (B, 512) float32, got (B, 2048) float32 "
        "(from node 'image_encoder'): dimension 1 is 2048, expected 512"
    )
    assert (error.value.node, error.value.key) == ("fuse", "image_feat")


def test_error_inside_a_module_names_the_node_and_where_its_input_came_from():
    with pytest.raises(GraphError) as error:
        fuse_graph(image_out=2048).check()
    assert str(error.value) == (
        "node 'head' input 'joint': expected (..., 768), got (B, 2304) float32 (from node "
        "'fuse'): dimension 1 is 2304, expected 768; its nn.Linear has in_features=768"
    )
    assert isinstance(error.value.__cause__, RuntimeError)
    assert "mat1 and mat2 shapes cannot be multiplied (17x2304 and 768x4)" in str(
        error.value.__cause__
    )


def test_error_inside_a_custom_module_is_chained_with_the_inputs_shapes():
    def split_heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], 5, -1)

    graph = Graph(
        [Node("proj", nn.Linear(10, 12), inputs="x"), Node("split", split_heads, inputs="proj")],
        inputs={"x": Spec(("B", 10))},
        outputs=["split"],
    )
    with pytest.raises(GraphError) as error:
        graph.check()
    assert str(error.value) == (
        "node 'split' failed on input 'proj' (B, 12) float32 (from node 'proj'): "
        "RuntimeError: shape '[17, 5, -1]' is invalid for input of size 204 (with B=17)"
    )
    assert isinstance(error.value.__cause__, RuntimeError) and error.value.node == "split"


def test_concat_of_mismatched_branches_lists_every_input():
    graph = Graph(
        [
            Node("a", nn.Linear(4, 3), inputs="x"),
            Node("b", lambda x: x[:, :, None], inputs="x"),
            Concat(["a", "b"], "ab"),
        ],
        inputs={"x": Spec(("B", 4))},
        outputs=["ab"],
    )
    with pytest.raises(GraphError) as error:
        graph.check()
    assert str(error.value) == (
        "node 'ab' failed on inputs 'a' (B, 3) float32 (from node 'a'), 'b' (B, 4, 1) "
        "float32 (from node 'b'): RuntimeError: Tensors must have same number of "
        "dimensions: got 2 and 3 (with B=17)"
    )


def test_batch_with_wrong_shape_is_caught_with_its_real_sizes():
    batch = {"tokens": torch.zeros(4, 9, dtype=torch.int64), "pixels": torch.zeros(4, 3, 8, 8)}
    with pytest.raises(GraphError) as error:
        fuse_graph().check(batch)
    assert str(error.value) == (
        "input 'pixels': expected (B, 192) float32, got (4, 3, 8, 8) float32 (from the batch): "
        "4 dimensions, expected 2"
    )
    assert (error.value.node, error.value.key) == (None, "pixels")


def test_batch_size_must_agree_across_inputs_and_names_where_it_was_set():
    batch = {"tokens": torch.zeros(4, 9, dtype=torch.int64), "pixels": torch.zeros(3, 192)}
    with pytest.raises(GraphError) as error:
        fuse_graph().check(batch)
    assert str(error.value) == (
        "input 'pixels': expected (B, 192) float32, got (3, 192) float32 (from the batch): "
        "dimension 0 is 3, but B is 4 in input 'tokens'"
    )


def test_wrong_dtype_from_the_batch_is_caught():
    batch = {"tokens": torch.zeros(4, 9), "pixels": torch.zeros(4, 192)}
    with pytest.raises(GraphError, match=r"^input 'tokens': expected \(B, T\) int64, got "):
        fuse_graph().check(batch)


def test_spec_given_to_check_stands_in_for_a_value():
    with pytest.raises(GraphError) as error:
        fuse_graph().check({"pixels": Spec(("B", 3, 8, 8))})
    assert str(error.value) == (
        "input 'pixels': expected (B, 192) float32, got (B, 3, 8, 8) float32 (from the "
        "batch): 4 dimensions, expected 2"
    )


def test_value_check_runs_on_the_batch_given_to_check():
    graph = Graph(
        [Node("enc", nn.Linear(3, 2), inputs="x")],
        inputs={"x": Spec(("B", 3), bounds=(0, 1))},
        outputs=["enc"],
    )
    graph.check()  # from specs: no values, nothing to check
    graph.check({"x": torch.full((2, 3), 0.5)})
    with pytest.raises(GraphError) as error:
        graph.check({"x": torch.tensor([[0.0, 255.0, 3.0]])})
    assert str(error.value) == (
        "input 'x': expected (B, 3) in [0, 1], got (1, 3) float32 (from the batch): values "
        "lie in [0, 255], outside [0, 1]"
    )


def test_node_spec_value_check_runs_on_batch_values():
    graph = Graph(
        [Node("enc", nn.Linear(3, 2), inputs="x", specs={"x": Spec((..., 3), bounds=(-1, 1))})],
        inputs=["x"],
        outputs=["enc"],
    )
    with pytest.raises(GraphError, match=r"^node 'enc' input 'x': .* values lie in \[0, 9\]"):
        graph.check({"x": torch.tensor([[0.0, 9.0, 1.0]])})


def test_input_without_spec_needs_a_value():
    graph = Graph([Node("enc", nn.Linear(3, 2), inputs="x")], inputs=["x"], outputs=["enc"])
    with pytest.raises(GraphError) as error:
        graph.check()
    assert str(error.value) == (
        "input 'x' has no Spec and check was given no value for it: declare "
        "inputs={'x': Spec(...)} or pass check a batch"
    )
    assert graph.check({"x": torch.zeros(2, 3)}) is graph


def test_sizes_fix_symbols_a_model_needs():
    positions = nn.Parameter(torch.zeros(64, 8))
    graph = Graph(
        [Node("add_positions", lambda x: x + positions, inputs="x")],
        inputs={"x": Spec(("B", "T", 8))},
        outputs=["add_positions"],
    )
    with pytest.raises(
        GraphError, match=r"size of tensor a \(41\) must match .* \(with B=17, T=41\)"
    ):
        graph.check()
    graph.check(sizes={"T": 64})
    assert "(B, T, 8) float32" in graph.summary() and "(B=17, T=64)" in graph.summary()


def test_lazy_module_is_refused_before_it_sizes_itself_on_fake_inputs():
    lazy = nn.LazyLinear(4)
    graph = Graph([Node("enc", lazy, inputs="x")], inputs={"x": Spec(("B", 3))}, outputs="enc")
    with pytest.raises(GraphError, match="node 'enc' has an uninitialised \\(lazy\\) parameter"):
        graph.check()
    assert nn.parameter.is_lazy(lazy.weight)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_batch_on_another_device_than_the_parameters_is_caught():
    graph = Graph([Node("enc", nn.Linear(3, 2).cuda(), inputs="x")], inputs=["x"], outputs="enc")
    with pytest.raises(GraphError) as error:
        graph.check({"x": torch.zeros(2, 3)})
    assert str(error.value) == (
        "node 'enc' input 'x': on cpu, but the node's parameters are on cuda:0 (from the batch)"
    )
    graph.check({"x": torch.zeros(2, 3, device="cuda")})


# ------------------------------------------------------------------ a chain of Linear layers


def linear_chain(widths: list[int], wrong: int | None = None, extra: int = 0) -> Graph:
    """Linear layers widths[0] -> widths[1] -> ...; layer `wrong` expects `extra` more."""
    nodes, key = [], "x"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        n_in += extra if i == wrong else 0
        nodes.append(Node(f"layer{i}", nn.Linear(n_in, n_out), inputs=key))
        key = f"layer{i}"
    return Graph(nodes, inputs={"x": Spec(("B", widths[0]))}, outputs=key)


@settings(max_examples=30, deadline=None)
@given(widths=st.lists(st.integers(1, 48), min_size=2, max_size=8), data=st.data())
def test_linear_chain_passes_and_one_wrong_size_fails_at_exactly_that_node(widths, data):
    linear_chain(widths).check()
    wrong = data.draw(st.integers(0, len(widths) - 2), label="wrong layer")
    extra = data.draw(st.integers(1, 5), label="extra inputs")
    with pytest.raises(GraphError) as error:
        linear_chain(widths, wrong, extra).check()
    source = "the batch" if wrong == 0 else f"node 'layer{wrong - 1}'"
    key = "x" if wrong == 0 else f"layer{wrong - 1}"
    expected = widths[wrong] + extra
    assert str(error.value) == (
        f"node 'layer{wrong}' input {key!r}: expected (..., {expected}), got (B, "
        f"{widths[wrong]}) float32 (from {source}): dimension 1 is {widths[wrong]}, expected "
        f"{expected}; its nn.Linear has in_features={expected}"
    )
    assert (error.value.node, error.value.key) == (f"layer{wrong}", key)
