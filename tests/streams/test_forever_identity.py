"""A saved position resumes only under settings it holds under: a stream that can be
resized may change its world size, workers and batch size (test_forever_elastic.py), any
other change is refused naming the setting, the saved value and the new one, and a
tampered state names its key (issue 12, item 2: such resumes used to load and then give
other samples)."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader, SequentialSampler

import loopline
from utils import count_up


def map_loader(size=100, batch_size=4, seed=1, rank=0, world_size=1, **options):
    sampler = loopline.EpochSampler(size, seed=seed, rank=rank, world_size=world_size)
    return DataLoader(list(range(size)), batch_size=batch_size, sampler=sampler, **options)


def saved(loader, steps=3):
    stream = loopline.forever(loader)
    for _ in range(steps):
        next(stream)
    state = stream.state_dict()
    stream.close()
    return state


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ({}, {"size": 90}, "saved with dataset_length=100 but .* dataset_length=90"),
        ({}, {"seed": 2}, "saved with sampler_seed=1 but .* sampler_seed=2"),
        ({}, {"drop_last": True}, "saved with drop_last=False but .* drop_last=True"),
    ],
)
def test_a_map_style_resume_under_other_settings_is_refused(before, after, message):
    state = saved(map_loader(**before))
    with pytest.raises(ValueError, match=message):
        loopline.forever(map_loader(**{**before, **after})).load_state_dict(state)


def test_another_sampler_is_refused_naming_both():
    state = saved(map_loader())
    other = DataLoader(list(range(100)), batch_size=4, sampler=SequentialSampler(range(100)))
    with pytest.raises(
        ValueError,
        match="saved with sampler='BatchSampler/EpochSampler' but this loader has "
        "sampler='BatchSampler/SequentialSampler'",
    ):
        loopline.forever(other).load_state_dict(state)


def test_a_generator_stream_with_another_seed_is_refused():
    def loader(seed=0):
        return DataLoader(loopline.from_generator(count_up, 40, seed=seed), batch_size=5)

    state = saved(loader())
    with pytest.raises(ValueError, match=r"saved with dataset_seed=0 but .* dataset_seed=3"):
        loopline.forever(loader(seed=3)).load_state_dict(state)


@pytest.mark.parametrize(
    ("after", "message"),
    [
        ({"batch_size": 8}, "saved with batch_size=4 but this loader has batch_size=8"),
        ({"world_size": 4}, "saved with world_size=2 but this loader has world_size=4"),
    ],
)
def test_a_sampler_that_cannot_be_dealt_afresh_keeps_its_topology(after, message):
    # A DistributedSampler's order is not one job-wide order dealt in strides from
    # loopline's view, so the rest of its epoch cannot be dealt to another topology.
    from torch.utils.data.distributed import DistributedSampler

    def loader(batch_size=4, world_size=2):
        sampler = DistributedSampler(range(100), num_replicas=world_size, rank=0, seed=1)
        return DataLoader(list(range(100)), batch_size=batch_size, sampler=sampler)

    state = saved(loader())
    with pytest.raises(ValueError, match=message):
        loopline.forever(loader(**after)).load_state_dict(state)


def test_the_same_settings_resume_as_before():
    state = saved(map_loader(world_size=2, rank=1))
    stream = loopline.forever(map_loader(world_size=2, rank=1))
    stream.load_state_dict(state)
    assert stream.step == 3


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("position", -2, r"state\['ranks'\]\[0\]\['position'\] must be an int >= 0 .*got -2"),
        ("position", "7", r"\['position'\] must be an int >= 0 .*got '7'"),
        ("epoch", -1, r"state\['ranks'\]\[0\]\['epoch'\] must be an int >= 0, got -1"),
        ("step", None, r"state\['ranks'\]\[0\]\['step'\] must be an int >= 0, got None"),
    ],
)
def test_a_tampered_state_names_the_key_it_got_wrong(key, value, message):
    state = saved(map_loader())
    state["ranks"][0][key] = value
    with pytest.raises(ValueError, match=message):
        loopline.forever(map_loader()).load_state_dict(state)


def test_a_tampered_identity_names_its_key():
    state = {**saved(map_loader()), "identity": [1]}
    with pytest.raises(ValueError, match=r"state\['identity'\] must be a dict .* got list"):
        loopline.forever(map_loader()).load_state_dict(state)


def test_a_tampered_generator_position_names_the_key():
    loader = DataLoader(loopline.from_generator(count_up, 40), batch_size=5, num_workers=2)
    state = saved(loader)
    state["ranks"][0]["position"] = [3, -1]
    with pytest.raises(ValueError, match=r"\['position'\] must be a list of ints >= 0"):
        loopline.forever(loader).load_state_dict(state)
