"""Padded: it moves, pins and unpacks like a tensor, and unpad gives the samples back."""

import torch

import loopline


def test_padded_moves_pins_and_unpacks():
    padded = loopline.pad_collate([torch.ones(1), torch.ones(2)])
    moved = padded.to(torch.float64)
    assert isinstance(moved, loopline.Padded) and moved.data.dtype == torch.float64
    assert moved.mask.dtype == torch.bool and moved.lengths.dtype == torch.int64
    data, mask, lengths = padded.to("cpu", non_blocking=True)
    assert (data.shape, mask.shape, lengths.tolist()) == ((2, 2), (2, 2), [1, 2])


def test_dataloader_pinning_reaches_every_tensor_of_padded(monkeypatch):
    from torch.utils.data._utils.pin_memory import pin_memory

    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a: pinned.append(self) or self)
    result = pin_memory({"x": loopline.pad_collate([torch.ones(1), torch.ones(2)])})
    assert isinstance(result["x"], loopline.Padded) and len(pinned) == 3


def test_unpad_slices_the_padded_dimension_even_when_it_is_not_the_first():
    samples = [torch.ones(2, 1), torch.ones(2, 3)]
    assert [tuple(t.shape) for t in loopline.pad_collate(samples).unpad()] == [(2, 1), (2, 3)]
