"""What a saved position of `forever` means something under, and the check of a state.

A position counts batches of one batch size, from one sampler's order of one dataset, in
one rank's share, so it is saved with those settings (the stream's identity), and a
resume under other settings is refused, naming the setting, the saved value and the new
one, rather than continuing with other samples. The positions themselves are checked
too: a state that was tampered with names the key it got wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sized
from typing import Any

from torch.utils.data import BatchSampler, DataLoader

from loopline._checks import is_int
from loopline.streams._endless import index_sampler
from loopline.streams.protocols import Placed
from loopline.streams.shard import distributed_rank_and_size

# Why each setting binds a saved position, for the message that refuses a change.
REASONS = {
    "batch_size": "the position counts batches of the saved size",
    "drop_last": "it decides which samples the last batch of an epoch holds",
    "workers": "an iterable dataset's shards depend on the worker count",
    "rank": "the position is this rank's share of the epoch",
    "world_size": "every rank's share of the epoch depends on the number of ranks",
    "sampler": "the position counts batches in this sampler's order",
    "dataset_length": "the order of an epoch is a permutation of the dataset's indices",
    "sampler_seed": "the order of every epoch is drawn from the seed",
    "dataset_seed": "the generators draw every epoch from the seed",
    "reseed": "the random draws of every sample depend on which RNGs are seeded",
}


def identity(
    source: Iterable[Any], kind: str, workers: int, rngs: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The settings a position of `forever(source, reseed=rngs)` holds under, by name."""
    if kind == "generic" or not isinstance(source, DataLoader):
        return {}
    rank, world_size = distributed_rank_and_size()
    found: dict[str, Any] = {"batch_size": source.batch_size, "drop_last": source.drop_last}
    found["reseed"] = list(rngs)
    if kind == "iterable":
        found.update(workers=workers, dataset_seed=getattr(source.dataset, "seed", None))
    else:
        sampler = index_sampler(source)
        inner = sampler.sampler if isinstance(sampler, BatchSampler) else sampler
        if isinstance(inner, Placed):
            rank, world_size = inner.place()
        elif is_int(getattr(inner, "num_replicas", None)):  # a DistributedSampler
            rank, world_size = getattr(inner, "rank", 0), getattr(inner, "num_replicas", 1)
        names = [type(sampler).__name__, type(inner).__name__]
        found["sampler"] = "/".join(dict.fromkeys(names))
        found["batch_size"] = getattr(sampler, "batch_size", source.batch_size)
        if isinstance(source.dataset, Sized):
            found["dataset_length"] = len(source.dataset)
        found["sampler_seed"] = getattr(inner, "seed", None)
    found.update(rank=rank, world_size=world_size)
    return found


# What a resized job may change: the rest of the epoch is then dealt afresh (_elastic).
TOPOLOGY = ("batch_size", "rank", "workers", "world_size")


def check_same(saved: Any, now: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> None:
    """Refuse a saved identity that differs from `now` (but for the settings in
    `ignore`), naming the first difference."""
    if not isinstance(saved, Mapping):
        raise ValueError(
            f"forever.load_state_dict: state['identity'] must be a dict of the loader's "
            f"settings, got {type(saved).__name__}"
        )
    for key in sorted(set(saved) | set(now)):
        if key in ignore:
            continue
        before, after = saved.get(key), now.get(key)
        if before != after:
            raise ValueError(
                f"forever.load_state_dict: the state was saved with {key}={before!r} but this "
                f"loader has {key}={after!r}; {REASONS.get(key, 'the position depends on it')}, "
                "so resuming would lose or repeat samples: resume with the saved setting"
            )


def check_position(position: Any, where: str, kind: str, workers: int) -> None:
    """Raise naming the key of a rank's position that is not what `forever` saves."""
    if kind == "iterable":
        if not (
            isinstance(position, list) and all(is_int(count) and count >= 0 for count in position)
        ):
            raise ValueError(
                f"forever.load_state_dict: {where}['position'] must be a list of ints >= 0 "
                f"(batches per worker), got {position!r}"
            )
        if len(position) != workers:
            raise ValueError(
                f"forever.load_state_dict: the state was saved with {len(position)} "
                f"DataLoader worker(s) but this loader has {workers}; "
                f"{REASONS['workers']}, so resume needs the same count"
            )
    elif not is_int(position) or position < 0:
        raise ValueError(
            f"forever.load_state_dict: {where}['position'] must be an int >= 0 (batches "
            f"into the epoch), got {position!r}"
        )
