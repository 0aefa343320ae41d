"""Graph.check and the real forward agree on dtypes: the check passes exactly when a
forward at tiny sizes passes, over common modules, input dtypes and shapes, and a
failure names the node, the input, the dtype found and the parameters' dtype."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from loopline import Graph, GraphError, Node, Spec

KINDS = ["Linear", "Conv1d", "Conv2d", "Embedding", "LayerNorm", "LSTM", "GRU"]
KINDS += ["MultiheadAttention", "TransformerEncoderLayer"]
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64]


class SelfAttention(nn.Module):
    """nn.MultiheadAttention as a node reading one input: query, key and value alike."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x)[0]


def module_and_shape(kind: str, width: int, batch: int) -> tuple[nn.Module, tuple[int, ...]]:
    """A tiny module of `kind` taking `width` features, and its input shape."""
    time = 3
    return {
        "Linear": (nn.Linear(4, 3), (batch, width)),
        "Conv1d": (nn.Conv1d(4, 3, 3), (batch, width, 5)),
        "Conv2d": (nn.Conv2d(4, 3, 3), (batch, width, 5, 5)),
        "Embedding": (nn.Embedding(10, 4), (batch, width)),
        "LayerNorm": (nn.LayerNorm(4), (batch, width)),
        "LSTM": (nn.LSTM(4, 3), (time, batch, width)),
        "GRU": (nn.GRU(4, 3), (time, batch, width)),
        "MultiheadAttention": (SelfAttention(4), (time, batch, width)),
        "TransformerEncoderLayer": (
            nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0),
            (time, batch, width),
        ),
    }[kind]


def real_forward_passes(module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> bool:
    fill = 0 if dtype == torch.int64 else 1  # index 0 exists, as in the check's stand-ins
    try:
        with torch.no_grad():
            module(torch.full(shape, fill, dtype=dtype))
    except (RuntimeError, ValueError, AssertionError, IndexError):
        return False
    return True


@settings(max_examples=120, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    dtype=st.sampled_from(DTYPES),
    width=st.sampled_from([4, 4, 5]),
    batch=st.integers(1, 3),
)
def test_check_passes_exactly_when_the_real_forward_does(kind, dtype, width, batch):
    module, shape = module_and_shape(kind, width, batch)
    module.eval()
    graph = Graph(
        [Node("net", module, inputs="x")], inputs={"x": Spec(shape, dtype)}, outputs="net"
    )
    expected = real_forward_passes(module, shape, dtype)
    try:
        graph.check()
    except GraphError as error:
        assert not expected, f"check failed where the forward passes: {error}"
        assert error.node == "net" and str(error).startswith("node 'net'")
    else:
        assert expected, f"check passed {kind} {dtype} {shape}, the real forward fails"


@pytest.mark.parametrize("dtype", [torch.int64, torch.float64, torch.float16, torch.bfloat16])
def test_linear_meeting_another_dtype_names_node_input_and_both_dtypes(dtype):
    graph = Graph(
        [Node("head", nn.Linear(8, 2), inputs="x")],
        inputs={"x": Spec(("B", 8), dtype)},
        outputs="head",
    )
    with pytest.raises(GraphError) as error:
        graph.check()
    name = str(dtype).removeprefix("torch.")
    assert str(error.value).startswith(
        f"node 'head' input 'x': (B, 8) {name} (from the batch) meets parameters of dtype "
        "float32: RuntimeError: mat1 and mat2 must have the same dtype"
    )
    assert (error.value.node, error.value.key) == ("head", "x")


def test_a_model_built_on_meta_is_refused_its_dtype_clash_without_a_real_run():
    with torch.device("meta"):
        net = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2))
    graph = Graph(
        [Node("net", net, inputs="x")], inputs={"x": Spec(("B", 8), torch.float64)}, outputs="net"
    )
    with pytest.raises(
        GraphError,
        match=r"dtype float32: DtypeClash: addmm needs one dtype, got float32, float64",
    ):
        graph.check()


def test_an_embedding_fed_floats_is_not_told_to_match_its_weights_dtype():
    graph = Graph(
        [Node("embed", nn.Embedding(10, 4), inputs="ids")],
        inputs={"ids": Spec(("B", "T"), torch.float32)},
        outputs="embed",
    )
    with pytest.raises(GraphError) as error:
        graph.check()
    assert "meets parameters" not in str(error.value)
    assert "'indices' to have one of the following scalar types" in str(error.value)


def test_reduced_precision_into_layer_norm_passes_as_on_the_cpu():
    graph = Graph(
        [Node("norm", nn.LayerNorm(4), inputs="x")],
        inputs={"x": Spec(("B", 4), torch.bfloat16)},
        outputs="norm",
    )
    graph.check()
    assert "norm" in graph.summary()


def test_a_spec_with_a_dtype_name_checks_like_one_with_the_dtype():
    def graph(dtype: str) -> Graph:
        node = Node("head", nn.Linear(10, 2), inputs="x")
        return Graph([node], inputs={"x": Spec(("B", 10), dtype)}, outputs="head")

    graph("float32").check()
    with pytest.raises(GraphError, match=r"float64 \(from the batch\) meets parameters"):
        graph("float64").check()
