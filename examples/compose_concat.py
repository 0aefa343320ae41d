"""How do I feed one dataset to two models and combine their outputs?

Two models read the same features, their outputs are concatenated, a final layer reads
the concatenation. As a `loopline.Graph` each model is a named node reading keys of the
dict batch the DataLoader yields; `graph.check()` runs the whole graph once on meta tensors
(no data, no compute) before training, so a final layer sized for the wrong width fails
there, naming the node, instead of as `mat1 and mat2 shapes cannot be multiplied` at the
first batch. The data is generated in code; nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import loopline

SAMPLES, FEATURES, BATCH = 100, 10, 32


class Features(Dataset):
    """Sample i is `{"x": [10], "y": [1]}`: y is a fixed function of x plus noise."""

    def __init__(self, size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, FEATURES, generator=generator)
        self.y = self.x[:, :3].sum(dim=1, keepdim=True).tanh()
        self.y += 0.05 * torch.randn(size, 1, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}  # default collate stacks each key


def two_models(final_width: int = 12) -> loopline.Graph:
    torch.manual_seed(0)
    return loopline.Graph(
        [
            loopline.Node("model_a", nn.Linear(FEATURES, 5), inputs="x", output="a"),
            loopline.Node("model_b", nn.Linear(FEATURES, 7), inputs="x", output="b"),
            loopline.Concat(["a", "b"], "ab"),  # [B, 5 + 7]
            loopline.Node("final", nn.Linear(final_width, 1), inputs="ab", output="pred"),
        ],
        inputs={"x": loopline.Spec(("B", FEATURES), torch.float32)},
        outputs=["pred"],
    )


def main() -> None:
    loader = DataLoader(Features(SAMPLES), batch_size=BATCH, shuffle=True)
    graph = two_models()
    print(graph.check())  # the pre-flight check, then the summary table

    optimizer = torch.optim.Adam(graph.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        for batch in loader:
            loss = nn.functional.mse_loss(graph(batch)["pred"], batch["y"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    print(f"loss: first epoch {sum(losses[:4]) / 4:.3f}, last epoch {sum(losses[-4:]) / 4:.3f}")
    print(f"loss decreased: {sum(losses[-4:]) < 0.5 * sum(losses[:4])}")

    # The same forward, written by hand: the graph adds nothing to it.
    x = next(iter(loader))["x"]
    model_a, model_b, final = (graph.nodes[name] for name in ("model_a", "model_b", "final"))
    by_hand = final(torch.cat((model_a(x), model_b(x)), dim=1))
    print(f"graph equals the hand-written forward: {torch.equal(graph({'x': x})['pred'], by_hand)}")

    # A final layer sized for model_a alone: caught before any batch runs.
    try:
        two_models(final_width=5).check()
    except loopline.GraphError as error:
        print(f"GraphError: {error}")
        print(f"wrong width named before the first batch: {error.node == 'final'}")


if __name__ == "__main__":
    main()
