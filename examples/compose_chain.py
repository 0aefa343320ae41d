"""How do I chain two models with a transformation in between, or train one on another's output?

(a) A chain: model_a's output goes through `torch.sigmoid` into model_b. A plain function
is a node like a module, so the transform sits in the graph where it happens. The check
finds a model_b sized for the wrong width and names the node that fed it.

(b) Two networks, each with its own loss and optimizer: the second reads the first's
output as data. `detach=True` on the second node is the whole pattern: no gradient of the
second loss reaches the first network, and `graph.nodes[name]` gives each its optimizer.
The data is generated in code; nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

import loopline

FEATURES, BATCH = 10, 32


def chain(b_inputs: int = 5) -> loopline.Graph:
    torch.manual_seed(0)
    return loopline.Graph(
        [
            loopline.Node("model_a", nn.Linear(FEATURES, 5), inputs="x", output="a"),
            loopline.Node("squash", torch.sigmoid, inputs="a"),  # a transform, no parameters
            loopline.Node("model_b", nn.Linear(b_inputs, 2), inputs="squash", output="y"),
        ],
        inputs={"x": loopline.Spec(("B", FEATURES), torch.float32)},
        outputs=["y"],
    )


def part_a() -> None:
    print("(a) a chain with a transform between two models")
    graph = chain()
    print(graph.check())
    x = torch.randn(BATCH, FEATURES)
    model_a, model_b = graph.nodes["model_a"], graph.nodes["model_b"]
    same = torch.equal(graph({"x": x})["y"], model_b(torch.sigmoid(model_a(x))))
    print(f"chain equals the hand-written loop: {same}")
    try:
        chain(b_inputs=4).check()
    except loopline.GraphError as error:
        print(f"GraphError: {error}")
        named = error.node == "model_b" and "(from node 'squash')" in str(error)
        print(f"mismatch named with its source: {named}")


def part_b() -> None:
    print("(b) a second network trained on the first one's detached output")
    torch.manual_seed(0)
    graph = loopline.Graph(
        [
            loopline.Node(
                "first",
                nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)),
                inputs="x",
                output="h",
            ),
            loopline.Node("second", nn.Linear(4, 2), inputs="h", output="y", detach=True),
        ],
        inputs={"x": loopline.Spec(("B", 6))},
        outputs=["h", "y"],
    )
    print(graph.check())
    first_optimizer = torch.optim.SGD(graph.nodes["first"].parameters(), lr=0.1)
    second_optimizer = torch.optim.SGD(graph.nodes["second"].parameters(), lr=0.1)
    x, features, labels = torch.randn(BATCH, 6), torch.randn(BATCH, 4), torch.randn(BATCH, 2)

    out = graph({"x": x})
    first_loss = nn.functional.mse_loss(out["h"], features)
    second_loss = nn.functional.mse_loss(out["y"], labels)
    second_loss.backward()  # the second loss alone first: where do its gradients go?
    untouched = all(p.grad is None for p in graph.nodes["first"].parameters())
    print(f"first net untouched by the second loss: {untouched}")
    first_loss.backward()
    first_optimizer.step()
    second_optimizer.step()
    reached = all(p.grad is not None for p in graph.nodes["second"].parameters())
    print(f"second net receives gradients: {reached}")


if __name__ == "__main__":
    part_a()
    part_b()
