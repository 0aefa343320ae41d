"""Graph.check's meta run: modules run on meta tensors and are left untouched, a module
that cannot run on meta falls back to real tensors, and the real stand-ins are valid."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import loopline
from loopline import Graph, GraphError, Node, Spec


class Recorder(nn.Module):
    """A Linear that records the device of every input it sees."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.devices: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.devices.append(x.device.type)
        return self.linear(x)


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


def test_real_stand_ins_for_meta_values_are_full_and_valid():
    from loopline.compose._stand_ins import to_meta, to_real

    images = loopline.pad_collate([torch.ones(3, 4, 5), torch.ones(3, 6, 2)])  # pads H and W
    stand_in = to_real(to_meta({"image": images, "ids": torch.ones(2, dtype=torch.int64)}), "cpu")
    data, mask, lengths = stand_in["image"]
    assert data.shape == (2, 3, 6, 5) and bool(data.eq(1).all())
    assert mask.shape == images.mask.shape and bool(mask.all())
    assert lengths.tolist() == [[6, 5], [6, 5]] and lengths.dtype == torch.int64
    assert stand_in["ids"].tolist() == [0, 0]
