"""Elastic, exact-once resume (issue 12): a job saved under one world size, worker count
and batch size and resumed under others delivers the rest of the epoch, every sample not
yet delivered exactly once; later epochs use the new topology. These used to lose or
repeat samples (batch size 4 -> 8: 20 of 100 lost; world size 2 -> 4: 40 missing)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loopline
from _resized import as_rank, generator_job, map_job, run_job
from utils import count_up, own_part

topology = st.tuples(st.integers(1, 4), st.integers(1, 8))  # (world size, batch size)


def exactly_once(*parts, size):
    counts = Counter(sample for part in parts for sample in part)
    assert counts == Counter(range(size)), {s: n for s, n in counts.items() if n != 1}


def draw_takes(data, shares, batch_size):
    """For each rank, how many batches it takes before the save: any number up to all of
    its share (a rank that went past its epoch's end would be in another epoch)."""
    return [
        data.draw(st.integers(0, sum(-(-n // batch_size) for n in rank)), label="takes")
        for rank in shares
    ]


def map_shares(left, world_size):
    return [[len(range(rank, left, world_size))] for rank in range(world_size)]


@settings(max_examples=120, deadline=None)
@given(size=st.integers(4, 60), before=topology, after=topology, again=topology, data=st.data())
def test_a_map_style_epoch_resized_twice_delivers_each_sample_once(
    size, before, after, again, data
):
    takes = draw_takes(data, map_shares(size, before[0]), before[1])
    first, state = run_job(map_job(size, *before), before[0], takes)
    middle = [data.draw(st.floats(0, 1), label="part") for _ in range(after[0])]
    second, state = run_job(map_job(size, *after), after[0], middle, state)
    rest, _ = run_job(map_job(size, *again), again[0], [None] * again[0], state)
    exactly_once(first, second, rest, size=size)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.tuples(st.integers(1, 4), st.integers(1, 8), st.integers(0, 3)),
    after=st.tuples(st.integers(1, 4), st.integers(1, 8), st.integers(0, 3)),
    seekable=st.booleans(),
    data=st.data(),
)
def test_a_generator_epoch_resized_delivers_each_item_once(before, after, seekable, data):
    world, batch, workers = before
    # Every rank of either job has an item (an empty rank's epoch is refused as empty).
    least = max(w * max(k, 1) for w, _, k in (before, after))
    size = data.draw(st.integers(least, 40), label="size")
    count = world * max(workers, 1)
    shares = [
        [
            len(range(shard, size, count))
            for shard in range(rank * (count // world), (rank + 1) * (count // world))
        ]
        for rank in range(world)
    ]
    takes = draw_takes(data, shares, batch)
    fn = from_start if seekable else count_up
    job = generator_job(fn, size, batch, workers, seekable=seekable)
    first, state = run_job(job, world, takes)
    world, batch, workers = after
    job = generator_job(fn, size, batch, workers, seekable=seekable)
    rest, _ = run_job(job, world, [None] * world, state)
    exactly_once(first, rest, size=size)


def from_start(n):
    """A seekable count: 0..n-1 from current_shard().start on."""
    yield from range(loopline.current_shard().start, n)


@pytest.mark.parametrize(
    ("before", "after"), [((4, 2), (8, 2)), ((8, 2), (4, 2)), ((4, 2), (4, 4)), ((4, 4), (4, 2))]
)
def test_the_measured_map_style_cases_lose_and_repeat_nothing(before, after):
    # batch size 4 -> 8 lost 20 of 100; world size 2 -> 4 left 40 missing.
    (batch, world), (new_batch, new_world) = before, after
    first, state = run_job(map_job(100, world, batch), world, [5] * world)
    rest, _ = run_job(map_job(100, new_world, new_batch), new_world, [None] * new_world, state)
    exactly_once(first, rest, size=100)


def test_later_epochs_use_the_new_topology():
    _, state = run_job(map_job(30, 2, 4), 2, [2, 2])
    with as_rank(0, 3):
        stream = loopline.forever(map_job(30, 3, 2)(0), epochs=2)
        stream.load_state_dict(state)
        epochs = Counter(stream.epoch for _ in [None] for batch in stream for _ in [batch])
    # Epoch 0 has 30 - 16 = 14 left, rank 0 of 3 gets 5 of them: 3 batches of 2; epoch 1
    # is rank 0's whole share of 10: 5 batches.
    assert epochs == Counter({0: 3, 1: 5})


def test_the_same_topology_still_continues_each_rank_exactly():
    make = map_job(40, 2, 3)
    uninterrupted, _ = run_job(make, 2, [None, None])
    head, state = run_job(make, 2, [4, 2])
    tail, _ = run_job(make, 2, [None, None], state)
    rank0 = head[:12] + tail[: len(uninterrupted) // 2 - 12]
    assert rank0 == uninterrupted[:20]


def test_a_resize_needs_every_rank_and_names_the_missing_ones():
    stream = loopline.forever(map_job(20, 2, 2)(0))
    next(stream)
    state = stream.state_dict()  # rank 0's alone, without torch.distributed
    with pytest.raises(ValueError, match=r"holds only rank\(s\) \[0\] of 2.*merge_states"):
        loopline.forever(map_job(20, 3, 2)(0)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"rank 1 resumes from its own.*only rank\(s\) \[0\]"):
        loopline.forever(map_job(20, 2, 2)(1)).load_state_dict(state)


def test_ranks_in_different_epochs_are_refused_naming_them():
    _, state = run_job(map_job(8, 2, 2), 2, [3, 1])  # rank 0 is past its 2 batches
    state["ranks"][0]["epoch"] = 1
    with pytest.raises(ValueError, match=r"different epochs \(rank 0: 1, rank 1: 0\).*even"):
        loopline.forever(map_job(8, 3, 2)(0)).load_state_dict(state)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(0, 2)),
    after=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(0, 2)),
    again=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(0, 2)),
    seekable=st.booleans(),
    data=st.data(),
)
def test_a_sharded_generator_resized_twice_delivers_each_item_once(
    before, after, again, seekable, data
):
    # Each old shard is carried on whole by one new shard, as that old shard.
    least = max(w * max(k, 1) for w, _, k in (before, after, again))
    size = data.draw(st.integers(least, 30), label="size")
    fn = own_part_from_start if seekable else own_part
    state, seen = None, []
    for (world, batch, workers), last in ((before, False), (after, False), (again, True)):
        job = generator_job(fn, size, batch, workers, sharded=True, seekable=seekable)
        takes = [None if last else data.draw(st.floats(0, 1)) for _ in range(world)]
        delivered, state = run_job(job, world, takes, state)
        seen += delivered
    exactly_once(seen, size=size)


def own_part_from_start(n):
    """This shard's items i % count == index, from its current_shard().start-th on."""
    shard = loopline.current_shard()
    yield from range(shard.index + shard.start * shard.count, n, shard.count)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(ranks=[None]), r"state\['ranks'\] must be a list of 2 entries"),
        (
            lambda s: s["ranks"][1].update(step=-1),
            r"state\['ranks'\]\[1\]\['step'\] must be an int >= 0",
        ),
        (
            lambda s: s["ranks"][0].pop("consumed"),
            r"state\['ranks'\]\[0\] must be a dict with keys",
        ),
        (
            lambda s: s["ranks"][0].update(consumed=[1, 2]),
            r"\['consumed'\] must be a list of 1 ints",
        ),
        (lambda s: s.update(layers=[[]]), r"state\['layers'\] must be a list of non-empty lists"),
        (lambda s: s.update(layers=[[-1]]), r"state\['layers'\] must be"),
    ],
)
def test_a_tampered_job_state_names_its_key(change, message):
    _, state = run_job(map_job(20, 2, 2), 2, [1, 1])
    change(state)
    with pytest.raises(ValueError, match=message):
        loopline.forever(map_job(20, 3, 2)(0)).load_state_dict(state)


def test_merge_states_refuses_states_of_other_jobs():
    one = loopline.forever(map_job(20, 2, 2)(0)).state_dict()
    other = loopline.forever(map_job(21, 2, 2)(1)).state_dict()
    with pytest.raises(ValueError, match=r"merge_states: states\[1\] was saved with settings"):
        loopline.merge_states([one, other])
    with pytest.raises(ValueError, match="both hold rank 0"):
        first = loopline.forever(map_job(20, 2, 2)(0))
        next(first)
        loopline.merge_states([one, first.state_dict()])
