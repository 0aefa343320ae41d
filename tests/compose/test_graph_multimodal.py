"""Text and images from pad_collate, routed to two encoders, concatenated, a head: the
check passes on specs and on a real batch, and catches the layout mistakes of this setup."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import loopline
from loopline import Concat, Graph, GraphError, Node, Spec

VOCAB, DIM, CLASSES = 50, 8, 3


class TextEncoder(nn.Module):
    """Embedding, then the mean over real tokens: reads the Padded's mask and lengths."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)

    def forward(self, text: loopline.Padded) -> torch.Tensor:
        data, mask, lengths = text
        x = self.embed(data) * mask[..., None]  # [B, T, D], zero on padding
        return x.sum(dim=1) / lengths[:, None]  # [B, D]


def image_encoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1),  # [B, 4, 16, 16]
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),  # [B, 4, 1, 1]
        nn.Flatten(),  # [B, 4]
        nn.Linear(4, DIM),
    )


def multimodal_graph() -> Graph:
    torch.manual_seed(0)
    return Graph(
        [
            Node("text_encoder", TextEncoder(), inputs="text", output="text_feat"),
            Node("image_encoder", image_encoder(), inputs="image", output="image_feat"),
            Concat(["text_feat", "image_feat"], "features", name="fuse"),
            Node("head", nn.Linear(2 * DIM, CLASSES), inputs="features", output="logits"),
        ],
        inputs={
            "text": Spec(("B", "T"), torch.int64, padded=True),
            "image": Spec(("B", 3, 32, 32), torch.float32),
        },
        outputs=["logits"],
    )


def samples(lengths: list[int]) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "text": torch.randint(1, VOCAB, (n,), generator=generator),  # [T_i]
            "image": torch.rand(3, 32, 32, generator=generator),
            "label": i % CLASSES,
        }
        for i, n in enumerate(lengths)
    ]


def batch_of(lengths: list[int], pad_keys: set[str] | None = None) -> dict:
    """A batch as a DataLoader with `collate_fn=pad_collate` makes it."""
    return loopline.pad_collate(
        samples(lengths), pad_keys={"text"} if pad_keys is None else pad_keys
    )


def test_check_from_specs_passes_and_the_summary_shows_each_modality():
    graph = multimodal_graph().check()
    lines = graph.summary().splitlines()
    assert lines[0] == ("Graph(text Padded (B, T) int64, image (B, 3, 32, 32) float32 -> logits)")
    assert "(B, 8) float32" in lines[2] and "(B, 16) float32" in lines[4]
    assert lines[-1] == "  checked on meta tensors from specs (B=17, T=41)"


def test_real_batch_passes_the_check_and_trains():
    graph = multimodal_graph()
    batch = batch_of([5, 3, 7, 2])
    graph.check(batch)
    logits = graph(batch)["logits"]
    assert logits.shape == (4, CLASSES)
    nn.functional.cross_entropy(logits, batch["label"]).backward()
    assert all(p.grad is not None for p in graph.parameters())


def test_forward_equals_the_hand_written_multimodal_forward():
    graph = multimodal_graph()
    batch = batch_of([5, 3, 7, 2])
    text, image, head = (graph.nodes[n] for n in ("text_encoder", "image_encoder", "head"))
    expected = head(torch.cat([text(batch["text"]), image(batch["image"])], dim=1))
    assert torch.equal(graph(batch)["logits"], expected)


def test_padding_does_not_change_a_samples_output():
    graph = multimodal_graph()
    alone = batch_of([3])
    with_longer = loopline.pad_collate([samples([3])[0], samples([9, 9])[1]], pad_keys={"text"})
    assert torch.allclose(
        graph(alone)["logits"][0], graph(with_longer)["logits"][0], rtol=0, atol=1e-6
    )


def test_channels_last_image_batch_is_caught_with_a_clear_message():
    batch = batch_of([5, 3, 7, 2])
    batch["image"] = batch["image"].permute(0, 2, 3, 1)  # [B, 32, 32, 3], as from PIL/numpy
    with pytest.raises(GraphError) as error:
        multimodal_graph().check(batch)
    assert str(error.value) == (
        "input 'image': expected (B, 3, 32, 32) float32, got (4, 32, 32, 3) float32 (from the "
        "batch): dimension 1 is 32, expected 3 (3 is dimension 3: a channels-last layout?)"
    )


def test_channels_last_is_caught_without_a_graph_input_spec():
    graph = multimodal_graph()
    graph.inputs["image"] = None  # no contract declared: the conv's own in_channels speak
    batch = batch_of([5, 3])
    batch["image"] = batch["image"].permute(0, 2, 3, 1)
    with pytest.raises(GraphError) as error:
        graph.check(batch)
    assert str(error.value) == (
        "node 'image_encoder' input 'image': expected (..., 3, ?, ?), got (2, 32, 32, 3) "
        "float32 (from the batch): dimension 1 is 32, expected 3 (3 is dimension 3: a "
        "channels-last layout?); its nn.Conv2d has in_channels=3"
    )
    assert "expected input[2, 32, 32, 3] to have 3 channels" in str(error.value.__cause__)


def test_text_stacked_instead_of_padded_is_caught():
    batch = batch_of([4, 4], pad_keys=set())  # equally long, no pad_keys: stacked
    with pytest.raises(GraphError) as error:
        multimodal_graph().check(batch)
    assert str(error.value) == (
        "input 'text': expected Padded (B, T) int64, got (2, 4) int64 (from the batch); "
        "pad_collate stacks equal lengths unless the key is in pad_keys"
    )
    multimodal_graph().check(batch_of([4, 4], pad_keys={"text"}))


def test_text_batch_size_must_match_the_images():
    batch = batch_of([5, 3, 7])
    batch["image"] = batch["image"][:2]
    with pytest.raises(GraphError) as error:
        multimodal_graph().check(batch)
    assert str(error.value).endswith("dimension 0 is 2, but B is 3 in input 'text'")


def test_encoder_reading_lengths_on_the_host_falls_back_to_a_full_real_padded():
    seen = []

    def trim(text: loopline.Padded) -> torch.Tensor:
        longest = int(text.lengths.max().item())  # a host read: meta cannot answer it
        seen.append((text.data.device.type, longest, bool(text.mask.all())))
        return text.data[:, :longest].float().mean(dim=1, keepdim=True)

    graph = Graph(
        [Node("trim", trim, inputs="text")],
        inputs={"text": Spec(("B", "T"), torch.int64, padded=True)},
        outputs=["trim"],
    )
    graph.check()
    assert seen == [("cpu", 41, True)]  # after the meta attempt failed before appending
    assert "  trim  text   trim    (B, 1) float32 *" in graph.summary()
