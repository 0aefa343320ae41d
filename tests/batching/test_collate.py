"""pad_collate: equal shapes stacked, different ones padded with mask and lengths, any
nesting kept, mismatched samples named by index and key path, and use as a collate_fn."""

import functools
from collections import namedtuple
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import loopline

Pair = namedtuple("Pair", ["left", "right"])


@dataclass
class Record:
    tokens: torch.Tensor
    label: int
    name: str


def test_equal_shapes_are_stacked():
    batch = loopline.pad_collate([torch.ones(2, 3), torch.zeros(2, 3)])
    assert isinstance(batch, torch.Tensor) and batch.shape == (2, 2, 3)


def test_different_lengths_are_padded_with_mask_and_lengths():
    data, mask, lengths = loopline.pad_collate(
        [torch.tensor([1, 2]), torch.tensor([3]), torch.tensor([4, 5, 6])], pad_value=-1
    )
    assert data.tolist() == [[1, 2, -1], [3, -1, -1], [4, 5, 6]]
    assert mask.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
    assert lengths.tolist() == [2, 1, 3]


def test_sequence_of_feature_vectors_gets_a_time_mask():
    padded = loopline.pad_collate([torch.ones(2, 4), torch.ones(5, 4)])
    assert padded.data.shape == (2, 5, 4)
    assert padded.mask.shape == (2, 5)
    assert padded.data[0][padded.mask[0]].shape == (2, 4)


def test_two_padded_dimensions_give_lengths_per_dimension():
    padded = loopline.pad_collate([torch.ones(3, 2, 4), torch.ones(3, 5, 1)])
    assert padded.data.shape == (2, 3, 5, 4)
    assert padded.mask.shape == (2, 1, 5, 4)
    assert padded.lengths.tolist() == [[2, 4], [5, 1]]
    assert int(padded.mask.expand(2, 3, 5, 4).sum()) == 3 * 2 * 4 + 3 * 5 * 1


def test_pad_to_multiple_of_rounds_the_padded_size_up():
    padded = loopline.pad_collate([torch.ones(3), torch.ones(9)], pad_to_multiple_of=8)
    assert padded.data.shape == (2, 16)
    assert padded.mask.sum(1).tolist() == [3, 9]


def test_numbers_become_tensors_and_strings_and_none_stay_lists():
    batch = loopline.pad_collate([(1, 0.5, True, "a", None), (2, 1.5, False, "b", None)])
    assert batch[0].dtype == torch.int64 and batch[0].tolist() == [1, 2]
    assert batch[1].dtype == torch.float32
    assert batch[2].dtype == torch.bool
    assert batch[3] == ["a", "b"] and batch[4] == [None, None]


def test_numpy_arrays_are_batched_like_tensors():
    padded = loopline.pad_collate([np.ones(2, dtype=np.float32), np.ones(3, dtype=np.float32)])
    assert padded.data.shape == (2, 3) and padded.data.dtype == torch.float32


def test_nested_dicts_namedtuples_and_dataclasses_keep_their_structure():
    samples = [
        {"pair": Pair(torch.ones(2), torch.ones(1)), "record": Record(torch.ones(k), k, f"r{k}")}
        for k in (2, 4)
    ]
    batch = loopline.pad_collate(samples)
    assert isinstance(batch["pair"], Pair)
    assert batch["pair"].left.shape == (2, 2)
    assert isinstance(batch["record"], Record)
    assert batch["record"].tokens.lengths.tolist() == [2, 4]
    assert batch["record"].label.tolist() == [2, 4]
    assert batch["record"].name == ["r2", "r4"]


def test_multi_modal_samples_collate_in_one_call():
    samples = [
        {"text": torch.randint(0, 100, (n,)), "image": torch.rand(3, 8, 8), "label": n % 2}
        for n in (5, 2, 7)
    ]
    batch = loopline.pad_collate(samples)
    assert batch["text"].data.shape == (3, 7) and batch["text"].lengths.tolist() == [5, 2, 7]
    assert batch["image"].shape == (3, 3, 8, 8)
    assert batch["label"].tolist() == [1, 0, 1]


def test_a_missing_key_names_the_sample_and_key():
    samples = [{"image": torch.ones(1), "text": torch.ones(1)}] * 7 + [{"image": torch.ones(1)}]
    with pytest.raises(
        ValueError,
        match=r"sample 7: expected keys \[.image., .text.\], found "
        r"missing \['text'\]$",
    ):
        loopline.pad_collate(samples)


def test_keys_in_another_order_are_the_same_keys():
    samples = [{"a": torch.ones(2), "b": 1}, {"b": 2, "a": torch.zeros(3)}]
    batch = loopline.pad_collate(samples)
    assert list(batch) == ["a", "b"]
    assert batch["b"].tolist() == [1, 2]
    assert batch["a"].lengths.tolist() == [2, 3]


def test_a_mapping_of_another_type_with_the_same_keys_is_batched():
    from collections import OrderedDict

    batch = loopline.pad_collate([{"x": 1}, OrderedDict(x=2)])
    assert batch["x"].tolist() == [1, 2]


def test_numpy_numbers_are_numbers():
    import numpy as np

    assert loopline.pad_collate([1.5, np.float64(2.5)]).tolist() == [1.5, 2.5]


def test_a_rank_mismatch_names_the_key_path():
    samples = [{"image": torch.ones(3, 4, 4)}, {"image": torch.ones(4, 4)}]
    with pytest.raises(
        ValueError,
        match=r"sample 1: \['image'\]: expected a tensor of rank 3 "
        r"\(3, 4, 4\).*found rank 2 \(4, 4\)",
    ):
        loopline.pad_collate(samples)


def test_a_dtype_mismatch_names_both_dtypes():
    samples = [(torch.ones(2),), (torch.ones(2, dtype=torch.int64),)]
    with pytest.raises(
        ValueError,
        match=r"sample 1: \[0\]: expected dtype torch.float32 .*"
        r"found torch.int64",
    ):
        loopline.pad_collate(samples)


def test_a_type_mismatch_names_what_was_found():
    with pytest.raises(ValueError, match=r"sample 1: \['x'\]: expected Tensor .*found list"):
        loopline.pad_collate([{"x": torch.ones(1)}, {"x": [1]}])


def test_an_empty_batch_is_an_error():
    with pytest.raises(ValueError, match="non-empty list of samples"):
        loopline.pad_collate([])


def test_works_as_a_dataloader_collate_fn_through_partial():
    sequences = [torch.arange(n) for n in (3, 1, 2, 5)]
    loader = DataLoader(
        sequences, batch_size=2, collate_fn=functools.partial(loopline.pad_collate, pad_value=-1)
    )
    first, second = list(loader)
    assert first.data.tolist() == [[0, 1, 2], [0, -1, -1]]
    assert second.lengths.tolist() == [2, 5]


def test_pad_keys_give_padded_even_when_all_lengths_are_equal():
    samples = [{"text": torch.ones(3), "image": torch.ones(2, 2)} for _ in range(2)]
    batch = loopline.pad_collate(samples, pad_keys={"text"})
    assert isinstance(batch["text"], loopline.Padded)
    assert batch["text"].lengths.tolist() == [3, 3] and bool(batch["text"].mask.all())
    assert isinstance(batch["image"], torch.Tensor)
    assert isinstance(loopline.pad_collate(samples)["text"], torch.Tensor)
