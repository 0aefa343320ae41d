"""Spec: symbolic shapes, dtypes, Padded values and value checks, with exact messages."""

from __future__ import annotations

import pytest
import torch

import loopline
from loopline.compose.spec import Spec, describe, format_shape, synthesize


def padded_tokens(*lengths: int) -> loopline.Padded:
    return loopline.pad_collate([torch.ones(n, dtype=torch.int64) for n in lengths])


def test_spec_prints_as_shape_and_dtype():
    assert str(Spec(("B", 512), torch.float32)) == "(B, 512) float32"
    assert str(Spec(("B",), torch.int64)) == "(B,) int64"
    assert str(Spec((..., None, 3))) == "(..., ?, 3)"
    assert str(Spec(("B", "T"), torch.int64, padded=True)) == "Padded (B, T) int64"
    assert str(Spec(("B", 3), bounds=(0, 1))) == "(B, 3) in [0, 1]"


def test_matching_value_gives_none_and_binds_symbols():
    sizes: dict[str, int] = {}
    assert Spec(("B", "T", 8)).mismatch(torch.zeros(4, 5, 8), sizes) is None
    assert sizes == {"B": 4, "T": 5}


def test_symbol_must_agree_across_values_checked_together():
    sizes: dict[str, int] = {}
    assert Spec(("B", 10)).mismatch(torch.zeros(32, 10), sizes) is None
    message = Spec(("B",), torch.int64).mismatch(torch.zeros(31, dtype=torch.int64), sizes)
    assert message == "expected (B,) int64, got (31,) int64: dimension 0 is 31, but B is 32"


def test_symbol_must_agree_within_one_value():
    message = Spec(("N", "N")).mismatch(torch.zeros(3, 4))
    assert message == "expected (N, N), got (3, 4) float32: dimension 1 is 4, but N is 3"


def test_failed_match_binds_nothing():
    sizes: dict[str, int] = {}
    assert Spec(("B", 10)).mismatch(torch.zeros(4, 9), sizes) is not None
    assert sizes == {}


def test_wrong_rank_and_size_and_dtype_are_told_apart():
    spec = Spec(("B", 512), torch.float32)
    assert spec.mismatch(torch.zeros(2, 3, 512)) == (
        "expected (B, 512) float32, got (2, 3, 512) float32: 3 dimensions, expected 2"
    )
    assert spec.mismatch(torch.zeros(2, 2048)) == (
        "expected (B, 512) float32, got (2, 2048) float32: dimension 1 is 2048, expected 512"
    )
    assert spec.mismatch(torch.zeros(2, 512, dtype=torch.float64)) == (
        "expected (B, 512) float32, got (2, 512) float64: dtype is float64"
    )


def test_ellipsis_matches_any_number_of_leading_dimensions():
    spec = Spec((..., 30))
    for shape in [(30,), (2, 30), (2, 3, 4, 30)]:
        assert spec.mismatch(torch.zeros(shape)) is None
    assert spec.mismatch(torch.zeros(())) == (
        "expected (..., 30), got () float32: 0 dimensions, expected at least 1"
    )
    assert Spec(("B", ..., 3)).mismatch(torch.zeros(2, 7, 7, 3)) is None


def test_none_matches_any_size():
    assert Spec((None, 3)).mismatch(torch.zeros(11, 3)) is None


def test_channels_last_image_is_named_as_such():
    message = Spec(("B", 3, 32, 32), torch.float32).mismatch(torch.zeros(8, 32, 32, 3))
    assert message == (
        "expected (B, 3, 32, 32) float32, got (8, 32, 32, 3) float32: dimension 1 is 32, "
        "expected 3 (3 is dimension 3: a channels-last layout?)"
    )


def test_transposed_features_are_pointed_at():
    message = Spec((..., 30)).mismatch(torch.zeros(8, 30, 7))
    assert message is not None
    assert message.endswith(
        "dimension 2 is 7, expected 30 (30 is dimension 1: a transposed layout?)"
    )


def test_padded_value_needs_a_padded_spec():
    tokens = padded_tokens(3, 2)
    assert Spec(("B", "T"), torch.int64, padded=True).mismatch(tokens) is None
    assert Spec(("B", "T"), torch.int64).mismatch(tokens) == (
        "expected (B, T) int64, got Padded (2, 3) int64; read its .data, or declare "
        "Spec(..., padded=True)"
    )


def test_stacked_tensor_where_padded_expected_names_pad_keys():
    stacked = loopline.pad_collate([torch.ones(3, dtype=torch.int64)] * 2)  # equal lengths
    message = Spec(("B", "T"), torch.int64, padded=True).mismatch(stacked)
    assert message == (
        "expected Padded (B, T) int64, got (2, 3) int64; pad_collate stacks equal lengths "
        "unless the key is in pad_keys"
    )


def test_padded_with_a_float_mask_is_refused():
    data, _, lengths = padded_tokens(3, 2)
    bad = loopline.Padded(data, torch.ones(2, 3), lengths)
    message = Spec(("B", "T"), padded=True).mismatch(bad)
    assert message is not None and message.endswith("its mask is float32, expected bool")


def test_bounds_are_checked_on_real_values():
    spec = Spec(("B", 3), bounds=(0.0, 1.0))
    assert spec.mismatch(torch.full((2, 3), 0.5)) is None
    x = torch.tensor([[0.0, 0.5, 1.0], [-0.25, 0.5, 2.5]])
    assert spec.mismatch(x) == (
        "expected (B, 3) in [0, 1], got (2, 3) float32: values lie in [-0.25, 2.5], outside [0, 1]"
    )


def test_value_checks_are_skipped_on_meta_tensors():
    def never(x: torch.Tensor) -> bool:
        raise AssertionError("a value check ran on a meta tensor")

    spec = Spec(("B", 3), bounds=(0, 1), check=never)
    assert spec.mismatch(torch.empty(2, 3, device="meta")) is None


def test_failing_check_is_named():
    def is_normalised(x: torch.Tensor) -> bool:
        return bool(x.abs().max() <= 1)

    message = Spec(("B",), check=is_normalised).mismatch(torch.tensor([0.5, 3.0]))
    assert message == "expected (B,), got (2,) float32: values fail check 'is_normalised'"


@pytest.mark.parametrize(
    ("shape", "error"),
    [((("B",), ("B",)), "a dimension"), ((-1,), "sizes are >= 0"), ((..., 3, ...), "at most one")],
)
def test_malformed_specs_are_refused(shape, error):
    with pytest.raises(ValueError, match=error):
        Spec(shape)


def test_describe_names_synthetic_sizes_and_nests():
    names = {17: "B", 41: "T"}
    assert describe(torch.zeros(17, 41, 8), names) == "(B, T, 8) float32"
    assert describe(padded_tokens(2, 1), names) == "Padded (2, 2) int64"
    value = (torch.zeros(17, 4), {"h": torch.zeros(1, 17, 4, dtype=torch.float16)})
    assert describe(value, names) == "tuple((B, 4) float32, {'h': (1, B, 4) float16})"
    assert describe(None) == "None" and describe("text") == "str"
    assert format_shape(()) == "()"


def test_synthesize_gives_each_symbol_its_own_prime_and_reuses_it():
    sizes: dict[str, int] = {}
    avoid = {41}  # a size the graph uses itself: never chosen
    x = synthesize(Spec(("B", "T", 4), torch.int64), sizes, avoid)
    y = synthesize(Spec(("B", None)), sizes, avoid)
    assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
    assert x.device.type == "meta" and x.dtype == torch.int64
    assert sizes == {"B": 17, "T": 67} and x.shape == (17, 67, 4) and y.shape == (17, 97)
    assert avoid == {17, 41, 67, 97}


def test_synthesize_padded_gives_a_full_mask_and_lengths():
    value = synthesize(Spec(("B", "T"), torch.int64, padded=True), {"T": 5}, {5}, "cpu")
    assert isinstance(value, loopline.Padded)
    assert value.data.shape == (17, 5) and value.mask.shape == (17, 5)
    assert bool(value.mask.all()) and value.lengths.tolist() == [5] * 17


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("float32", torch.float32),
        ("torch.float64", torch.float64),
        ("long", torch.int64),
        ("bfloat16", torch.bfloat16),
        ("bool", torch.bool),
    ],
)
def test_dtype_names_are_read_as_torch_dtypes(name, dtype):
    spec = Spec(("B", 10), name)
    assert spec.dtype is dtype
    assert spec.mismatch(torch.zeros(2, 10, dtype=dtype)) is None
    assert str(spec) == f"(B, 10) {str(dtype).removeprefix('torch.')}"


def test_a_dtype_name_meets_a_tensor_of_another_dtype_with_a_true_message():
    assert Spec(("B", 10), "float32").mismatch(torch.zeros(2, 10, dtype=torch.int64)) == (
        "expected (B, 10) float32, got (2, 10) int64: dtype is int64"
    )


@pytest.mark.parametrize(
    ("dtype", "error", "message"),
    [("float23", ValueError, "dtype 'float23' is not a torch dtype name"),
     ("Size", ValueError, "dtype 'Size' is not a torch dtype name"),
     (float, TypeError, "dtype must be a torch.dtype, its name or None, got type"),
     (3, TypeError, "got int 3")],
)  # fmt: skip
def test_a_dtype_that_is_no_dtype_is_refused_at_construction(dtype, error, message):
    with pytest.raises(error, match=message):
        Spec(("B", 10), dtype)
