"""Graph.check: every kind of broken contract, with the exact message, caught before a real
batch runs; the meta run leaves the real modules alone; the real-tensor fallback."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import loopline
from loopline import Concat, Graph, GraphError, Node, Spec


class Recorder(nn.Module):
    """A Linear that records the device of every input it sees."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.devices: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.devices.append(x.device.type)
        return self.linear(x)


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


# ------------------------------------------------------------------ the meta run


def test_check_runs_modules_on_meta_and_leaves_them_untouched():
    first, second = Recorder(4, 8), Recorder(8, 2)
    bn = nn.BatchNorm1d(8)
    graph = Graph(
        [
            Node("first", first, inputs="x"),
            Node("bn", bn, inputs="first"),
            Node("second", second, inputs="bn"),
        ],
        inputs={"x": Spec(("B", 4))},
        outputs=["second"],
    )
    state = {k: v.clone() for k, v in graph.state_dict().items()}
    x = torch.randn(5, 4)
    rng = torch.get_rng_state()
    graph.check({"x": x})
    assert first.devices == ["meta"] and second.devices == ["meta"]
    assert all(p.device.type == "cpu" for p in graph.parameters())
    assert all(torch.equal(state[k], v) for k, v in graph.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert graph.training and bn.num_batches_tracked.item() == 0


def test_errors_are_raised_before_any_module_sees_a_real_batch():
    encoder = Recorder(4, 8)
    graph = Graph(
        [Node("encoder", encoder, inputs="x"), Node("head", nn.Linear(7, 1), inputs="encoder")],
        inputs={"x": Spec(("B", 4))},
        outputs="head",
    )
    with pytest.raises(GraphError, match="node 'head' input 'encoder'"):
        graph.check({"x": torch.randn(3, 4)})
    assert encoder.devices == ["meta"]


def test_module_that_cannot_run_on_meta_falls_back_to_real_tensors():
    class DropEmpty(nn.Module):
        """Keeps the rows with any nonzero element: a data-dependent shape."""

        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.devices: list[str] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.devices.append(x.device.type)
            return x[x.any(dim=1)] * self.scale

    drop = DropEmpty()
    graph = Graph(
        [Node("drop", drop, inputs="x"), Node("head", nn.Linear(6, 1), inputs="drop")],
        inputs={"x": Spec(("B", 6))},
        outputs="head",
    )
    graph.check()
    assert drop.devices == ["meta", "cpu"]
    summary = graph.summary()
    assert "  drop  x      drop    (B, 6) float32 *" in summary
    assert (
        "  * 'drop' ran on real tensors of these shapes, as on meta it raised "
        "NotImplementedError: The register_meta function for torch.nonzero() raises un..."
    ) in summary
    assert "(B, 1) float32" in summary


def test_a_real_error_after_the_fallback_is_reported_from_the_real_run():
    def pick(x: torch.Tensor) -> torch.Tensor:
        return x[:, int(x.sum().item())]  # .item(): meta cannot; real ones give index 17 * 6

    graph = Graph([Node("pick", pick, inputs="x")], inputs={"x": Spec(("B", 6))}, outputs="pick")
    with pytest.raises(GraphError) as error:
        graph.check()
    assert str(error.value).startswith(
        "node 'pick' failed on input 'x' (B, 6) float32 (from the batch): IndexError: index 102"
    )
    assert isinstance(error.value.__cause__, IndexError)


def test_check_of_a_large_model_built_on_meta_is_fast():
    with torch.device("meta"):
        big = nn.Sequential(*[nn.Linear(4096, 4096) for _ in range(6)])  # 100M parameters
    graph = Graph([Node("big", big, inputs="x")], inputs={"x": Spec(("B", 4096))}, outputs="big")
    started = time.perf_counter()
    graph.check()
    assert time.perf_counter() - started < 2.0
    assert "100,687,872 parameters" in graph.summary()


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


def test_real_stand_ins_for_meta_values_are_full_and_valid():
    from loopline.compose._check import to_meta, to_real

    images = loopline.pad_collate([torch.ones(3, 4, 5), torch.ones(3, 6, 2)])  # pads H and W
    stand_in = to_real(to_meta({"image": images, "ids": torch.ones(2, dtype=torch.int64)}), "cpu")
    data, mask, lengths = stand_in["image"]
    assert data.shape == (2, 3, 6, 5) and bool(data.eq(1).all())
    assert mask.shape == images.mask.shape and bool(mask.all())
    assert lengths.tolist() == [[6, 5], [6, 5]] and lengths.dtype == torch.int64
    assert stand_in["ids"].tolist() == [0, 0]
