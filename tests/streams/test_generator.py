import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, IterableDataset

import loopline
from loopline.streams.shard import shard_of
from utils import count_up, fail_at, own_part, report_epoch, shuffled_own_part


def samples(loader):
    return sorted(int(x) for batch in loader for x in batch)


def shards(world_size, num_workers):
    for rank in range(world_size):
        for worker in range(num_workers):
            yield shard_of(rank, world_size, worker, num_workers)


def test_each_iteration_calls_the_function_afresh():
    calls = []

    def numbers(n):
        calls.append(n)
        yield from range(n)

    dataset = loopline.from_generator(numbers, 3)
    assert list(dataset) == [0, 1, 2]
    assert list(dataset) == [0, 1, 2]
    assert calls == [3, 3]


def test_arguments_and_keyword_arguments_reach_the_function():
    def scaled(n, *, factor):
        yield from (i * factor for i in range(n))

    assert list(loopline.from_generator(scaled, 3, factor=10)) == [0, 10, 20]


def test_generator_object_is_rejected_with_what_to_pass_instead():
    with pytest.raises(TypeError, match=r"from_generator\(make_samples, n\)"):
        loopline.from_generator(count_up(3))


def test_non_callable_is_rejected_naming_its_type():
    with pytest.raises(TypeError, match=r"must be a callable.*got list"):
        loopline.from_generator([1, 2, 3])


def test_function_returning_a_non_iterable_names_the_function():
    def broken():
        return 3

    with pytest.raises(loopline.GeneratorFailed, match=r"broken.*returned int, not an iterable"):
        list(loopline.from_generator(broken))


def test_naive_iterable_dataset_with_two_workers_yields_each_sample_twice():
    # The pitfall from_generator removes, checked so the comparison stays honest.
    class Naive(IterableDataset):
        def __iter__(self):
            return iter(range(10))

    assert samples(DataLoader(Naive(), batch_size=4, num_workers=2)) == sorted(list(range(10)) * 2)


@pytest.mark.parametrize("num_workers", [0, 1, 2, 3])
def test_workers_yield_each_sample_once(num_workers):
    dataset = loopline.from_generator(count_up, 23)
    loader = DataLoader(dataset, batch_size=4, num_workers=num_workers)
    assert samples(loader) == list(range(23))
    assert samples(loader) == list(range(23))  # and again, next epoch


def test_spawned_workers_yield_each_sample_once():
    dataset = loopline.from_generator(count_up, 17)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context="spawn")
    assert samples(loader) == list(range(17))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_sharded_generator_produces_only_its_part(num_workers):
    dataset = loopline.from_generator(own_part, 19, sharded=True)
    assert samples(DataLoader(dataset, batch_size=5, num_workers=num_workers)) == list(range(19))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 60),
    world_size=st.integers(1, 3),
    num_workers=st.integers(1, 3),
    sharded=st.booleans(),
)
def test_union_over_simulated_shards_is_the_sequence_once(n, world_size, num_workers, sharded):
    dataset = loopline.from_generator(own_part if sharded else count_up, n, sharded=sharded)
    seen = [x for shard in shards(world_size, num_workers) for x in dataset.iter_epoch(0, shard)]
    assert sorted(seen) == list(range(n))


def test_current_shard_outside_any_worker_is_zero_of_one():
    shard = loopline.current_shard()
    assert (shard.index, shard.count, shard.rank, shard.world_size) == (0, 0 + 1, 0, 1)


def test_current_shard_inside_the_generator_reports_epoch_and_seed():
    dataset = loopline.from_generator(report_epoch, 2, sharded=True)
    dataset.seed = 7
    dataset.set_epoch(3)
    assert list(dataset) == [(3, 7), (3, 7)]


def test_seed_is_a_keyword_of_from_generator_not_of_the_function():
    # Issue 12: seed= went to the user's function, which failed inside with a TypeError.
    dataset = loopline.from_generator(report_epoch, 2, sharded=True, seed=11)
    assert dataset.seed == 11
    assert list(dataset) == [(0, 11), (0, 11)]


def test_seed_reaches_the_generators_of_workers():
    dataset = loopline.from_generator(report_epoch, 4, sharded=True, seed=5)
    batches = DataLoader(dataset, batch_size=None, num_workers=2)
    assert [tuple(pair) for pair in batches] == [(0, 5)] * 8


@pytest.mark.parametrize("seed", [1.5, "3", True, None])
def test_a_seed_that_is_not_an_int_is_refused_naming_it(seed):
    with pytest.raises(ValueError, match=f"from_generator: seed must be an int, got {seed!r}"):
        loopline.from_generator(report_epoch, 2, seed=seed)


def test_current_shard_in_workers_names_each_worker():
    def whoami(n):
        shard = loopline.current_shard()
        yield (shard.index, shard.count, shard.worker, shard.num_workers)

    loader = DataLoader(
        loopline.from_generator(whoami, 1, sharded=True), num_workers=3, batch_size=None
    )
    assert sorted(tuple(row) for row in loader) == [(w, 3, w, 3) for w in range(3)]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(context):
    dataset = loopline.from_generator(shuffled_own_part, 12, sharded=True)
    loader = DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context=context,
    )
    orders = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        orders.append([int(x) for batch in loader for x in batch])
    for epoch, order in enumerate(orders):
        assert sorted(order) == list(range(12))
        expected = torch.randperm(12, generator=torch.Generator().manual_seed(epoch)).tolist()
        assert sorted(order) == sorted(expected)
    assert orders[0] != orders[1] != orders[2]
    # The same epoch gives the same order again.
    dataset.set_epoch(1)
    assert [int(x) for batch in loader for x in batch] == orders[1]


def test_set_epoch_rejects_a_negative_epoch():
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -1"):
        loopline.from_generator(count_up, 3).set_epoch(-1)


def test_lambda_under_spawn_says_to_define_a_module_level_function():
    dataset = loopline.from_generator(lambda: iter(range(3)))
    loader = DataLoader(dataset, num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(TypeError, match="it is a lambda; define it with def at module level"):
        next(iter(loader))


def test_closure_under_spawn_is_rejected_but_a_partial_of_a_module_function_works():
    def local(n):
        yield from range(n)

    with pytest.raises(TypeError, match="local function or closure"):
        next(
            iter(
                DataLoader(
                    loopline.from_generator(local, 3),
                    num_workers=1,
                    multiprocessing_context="spawn",
                )
            )
        )
    dataset = loopline.from_generator(functools.partial(count_up, 5))
    loader = DataLoader(dataset, batch_size=2, num_workers=1, multiprocessing_context="spawn")
    assert samples(loader) == list(range(5))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_exception_in_generator_reaches_the_loop_with_shard_and_sample_index(num_workers):
    loader = DataLoader(
        loopline.from_generator(fail_at, 10, 5),
        batch_size=2,
        num_workers=num_workers,
        timeout=60 if num_workers else 0,
    )
    with pytest.raises(
        Exception,
        match=r"ValueError: corrupt record 5 at sample 5 of the full "
        r"sequence, in shard \d of \d",
    ) as caught:
        list(loader)
    # Unsharded, every shard runs the whole generator, so any of them may hit it first.
    assert f"of {max(1, num_workers)} (rank 0, worker" in str(caught.value)
    assert "fail_at" in str(caught.value)


def batches_of(n, size):
    for start in range(0, n, size):
        yield torch.arange(start, min(start + size, n))


def test_batched_generator_is_sharded_batch_by_batch():
    dataset = loopline.from_generator(batches_of, 20, 4, batched=True)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    batches = [batch.tolist() for batch in loader]
    assert sorted(batches) == [list(range(s, min(s + 4, 20))) for s in range(0, 20, 4)]


def test_a_shard_owns_every_count_th_position_from_its_index():
    shards_of_three = [shard_of(0, 1, worker, 3) for worker in range(3)]
    owners = [[s.index for s in shards_of_three if s.owns(p)] for p in range(7)]
    assert owners == [[0], [1], [2], [0], [1], [2], [0]]
