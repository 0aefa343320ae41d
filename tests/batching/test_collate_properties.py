"""pad_collate's properties over random nested samples: each sample comes back out of the
batch by its mask, and unpad returns the original tensors."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import loopline

leaf_shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3)


@st.composite
def batches_of_samples(draw):
    """A random nested structure, and a batch of samples following it."""
    size = draw(st.integers(1, 5))
    structure = draw(
        st.recursive(
            st.one_of(leaf_shapes, st.just("number"), st.just("text")),
            lambda inner: st.one_of(
                st.dictionaries(st.sampled_from("abc"), inner, min_size=1, max_size=3),
                st.lists(inner, min_size=1, max_size=3).map(tuple),
            ),
            max_leaves=5,
        )
    )

    def sample(node):
        if node == "number":
            return draw(st.integers(-5, 5))
        if node == "text":
            return draw(st.text(max_size=3))
        if isinstance(node, dict):
            return {key: sample(child) for key, child in node.items()}
        if isinstance(node, tuple):
            return tuple(sample(child) for child in node)
        # A tensor whose rank is fixed by the structure and whose sizes vary per sample.
        shape = [draw(st.integers(0, 4)) for _ in node]
        return torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape) + 1

    return [sample(structure) for _ in range(size)]


class RealElements(tuple):
    """The elements a mask marks as real, in order (a padded sample's content, flattened)."""


def unbatch(batch, i):
    """Sample i out of a batch; for a padded tensor, the elements its mask marks real."""
    if isinstance(batch, loopline.Padded):
        real = batch.mask[i].expand(batch.data[i].shape[: batch.mask.dim() - 1])
        return RealElements(batch.data[i][real].flatten().tolist())
    if isinstance(batch, torch.Tensor):
        return batch[i]
    if isinstance(batch, dict):
        return {key: unbatch(value, i) for key, value in batch.items()}
    if isinstance(batch, tuple):
        return tuple(unbatch(value, i) for value in batch)
    return batch[i]


def same(a, b):
    if isinstance(b, RealElements):  # shapes are checked by the unpad test below
        return isinstance(a, torch.Tensor) and a.flatten().tolist() == list(b)
    if isinstance(a, int) and isinstance(b, torch.Tensor):  # numbers come back as 0-dim tensors
        return b.dim() == 0 and b.dtype == torch.int64 and b.item() == a
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=150, deadline=None)
@given(samples=batches_of_samples())
def test_slicing_samples_back_out_by_mask_returns_the_originals(samples):
    batch = loopline.pad_collate(samples)
    for i, original in enumerate(samples):
        assert same(original, unbatch(batch, i))


@settings(max_examples=100, deadline=None)
@given(samples=batches_of_samples())
def test_unpad_returns_the_original_tensors(samples):
    def leaves(node, out):
        if isinstance(node, loopline.Padded):
            out.append(node.unpad())
        elif isinstance(node, dict):
            for value in node.values():
                leaves(value, out)
        elif isinstance(node, tuple):
            for value in node:
                leaves(value, out)
        return out

    def tensor_leaves(sample, out):
        if isinstance(sample, torch.Tensor):
            out.append(sample)
        elif isinstance(sample, dict):
            for value in sample.values():
                tensor_leaves(value, out)
        elif isinstance(sample, tuple):
            for value in sample:
                tensor_leaves(value, out)
        return out

    batch = loopline.pad_collate(samples)
    padded_leaves = leaves(batch, [])
    per_sample = [tensor_leaves(s, []) for s in samples]
    # Each padded leaf corresponds to one tensor position across samples.
    columns = list(zip(*per_sample, strict=True))
    varying = [c for c in columns if len({tuple(t.shape) for t in c}) > 1]
    assert len(varying) == len(padded_leaves)
    for column, unpadded in zip(varying, padded_leaves, strict=True):
        for original, restored in zip(column, unpadded, strict=True):
            assert original.numel() == restored.numel()
            if original.numel():
                assert torch.equal(original, restored)
