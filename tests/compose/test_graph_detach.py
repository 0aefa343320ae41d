"""Graph detach edges: gradients stop where a node detaches an input, checked against
hand-computed gradients and a hand-written two-network step."""

from __future__ import annotations

import torch
from torch import nn

import loopline
from loopline import Graph, Node
from utils import two_networks

MSE = nn.MSELoss()


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
