"""A job's position: every rank's place in the epoch, in one state any rank can save.

`Forever.state_dict()` gives a state with one entry per rank (`ranks`): its epoch, step,
position in batches and the samples each of its shards delivered. Under
`torch.distributed` it is a collective that gathers every rank's entry, so the state is
the whole job's; without it (ranks simulated with `EpochSampler(rank=..., world_size=...)`,
or states saved apart) each state holds its own rank's entry and `merge_states` joins
them. A job resumed under the same topology takes each rank's own entry; under another
one it deals what is left (see `_elastic`), which needs every rank's entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch.distributed as dist

from loopline._checks import is_int

# Keys of a forever() state and of each of its rank entries.
KIND = "kind"
IDENTITY = "identity"  # the settings the positions hold under (see _identity.py)
RANKS = "ranks"  # per rank: its entry, or None where this state lacks it
LAYERS = "layers"  # what earlier topologies delivered of the current epoch (_elastic)
ROTATION = "rotation"  # how far the epoch's first run rotated its shards (_rotation)
FIRST_WORKERS = "first_workers"  # workers per rank in the epoch's first run (_resharded)
INNER = "inner"  # a generic loader's own state
EPOCH = "epoch"
STEP = "step"
POSITION = "position"  # batches into the epoch (per worker for iterable datasets)
CONSUMED = "consumed"  # samples delivered in the epoch, per shard of the rank

ENTRY_KEYS = (EPOCH, STEP, POSITION, CONSUMED)


def gather_entries(entry: dict[str, Any], rank: int, world_size: int) -> list[Any]:
    """Every rank's entry under torch.distributed (a collective), else only this one's."""
    entries: list[Any] = [None] * world_size
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() == world_size:
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, (rank, entry))
        for their_rank, their_entry in gathered:
            entries[their_rank] = their_entry
    else:
        entries[rank] = entry
    return entries


def job_state(
    kind: str,
    found: dict[str, Any],
    entry: dict[str, Any],
    layers: list[list[int]],
    rotation: int,
    first_workers: int,
) -> dict[str, Any]:
    """The state of a job whose rank `found["rank"]` has `entry` (gathered from every rank
    under torch.distributed), with the settings of the epoch's first run."""
    rank, world_size = found.get("rank", 0), found.get("world_size", 1)
    return {
        KIND: kind,
        IDENTITY: found,
        RANKS: gather_entries(entry, rank, world_size),
        LAYERS: layers,
        ROTATION: rotation,
        FIRST_WORKERS: first_workers,
    }


def merge_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Join the states that the ranks of one job saved apart into the job's state.

    Under `torch.distributed`, `Forever.state_dict()` already gathers every rank; without
    it each state holds its own rank's place, and a job resumed under another number of
    ranks, workers or batch size needs them all.

    Args:
        states: one `forever(...).state_dict()` per rank, in any order.

    Returns:
        One state holding every rank that any of `states` holds.

    Raises:
        ValueError: the states come from different streams or settings, or two hold the
            same rank.

    Example:
        >>> import loopline, torch
        >>> def stream(rank):
        ...     sampler = loopline.EpochSampler(8, rank=rank, world_size=2)
        ...     return loopline.forever(torch.utils.data.DataLoader(range(8), sampler=sampler))
        >>> states = [stream(rank).state_dict() for rank in (0, 1)]
        >>> [entry is None for entry in states[0]["ranks"]]
        [False, True]
        >>> [entry is None for entry in loopline.merge_states(states)["ranks"]]
        [False, False]
    """
    if not states:
        raise ValueError("merge_states: states is empty; pass one state per rank")
    first = states[0]
    merged = {**first, RANKS: list(first[RANKS])}
    for number, state in enumerate(states[1:], 1):
        for key in (KIND, LAYERS, ROTATION, FIRST_WORKERS):
            if state.get(key) != first.get(key):
                raise ValueError(
                    f"merge_states: states[{number}][{key!r}] is {state.get(key)!r} but "
                    f"states[0][{key!r}] is {first.get(key)!r}: not the same job"
                )
        ours = {k: v for k, v in first[IDENTITY].items() if k != "rank"}
        theirs = {k: v for k, v in state[IDENTITY].items() if k != "rank"}
        if ours != theirs:
            raise ValueError(
                f"merge_states: states[{number}] was saved with settings {theirs} but "
                f"states[0] with {ours}: not the same job"
            )
        for rank, entry in enumerate(state[RANKS]):
            if entry is None:
                continue
            if merged[RANKS][rank] is not None and merged[RANKS][rank] != entry:
                raise ValueError(
                    f"merge_states: states[{number}] and an earlier state both hold rank {rank}"
                )
            merged[RANKS][rank] = entry
    return merged


def check_layers(layers: Any) -> list[list[int]]:
    """`state['layers']` as a list of lists of counts, or an error naming the key."""
    if not (
        isinstance(layers, list)
        and all(
            isinstance(layer, list) and layer and all(is_int(n) and n >= 0 for n in layer)
            for layer in layers
        )
    ):
        raise ValueError(
            "forever.load_state_dict: state['layers'] must be a list of non-empty lists of "
            f"ints >= 0 (samples each shard delivered), got {layers!r}"
        )
    return layers


def check_state(state: Any, kind: str) -> None:
    """Raise unless `state` is a dict with every key of a `kind` stream's state."""
    if not isinstance(state, Mapping):
        raise TypeError(
            "forever.load_state_dict: state must be a dict from state_dict(), got "
            f"{type(state).__name__}"
        )
    missing = {KIND, IDENTITY, RANKS, LAYERS, ROTATION, FIRST_WORKERS} - set(state)
    if missing:
        raise KeyError(f"forever.load_state_dict: state lacks keys {sorted(missing)}")
    if state[KIND] != kind:
        raise ValueError(
            f"forever.load_state_dict: the state was saved from a {state[KIND]} loader "
            f"but this forever() wraps a {kind} loader"
        )


def check_count(state: Mapping[str, Any], key: str, least: int = 0) -> int:
    """`state[key]` as an int >= least, or an error naming the key."""
    value = state[key]
    if not is_int(value) or value < least:
        raise ValueError(
            f"forever.load_state_dict: state[{key!r}] must be an int >= {least}, got {value!r}"
        )
    return value


def check_entries(ranks: Any, world_size: int, shards: tuple[int, ...]) -> None:
    """Raise naming the key of a `state['ranks']` that is not what `forever` saves."""
    if not isinstance(ranks, list) or len(ranks) != world_size:
        raise ValueError(
            f"forever.load_state_dict: state['ranks'] must be a list of {world_size} "
            f"entries (one per rank of the saved world_size), got {ranks!r}"
        )
    for rank, entry in enumerate(ranks):
        if entry is None:
            continue
        where = f"state['ranks'][{rank}]"
        if not isinstance(entry, Mapping) or set(entry) != set(ENTRY_KEYS):
            raise ValueError(
                f"forever.load_state_dict: {where} must be a dict with keys "
                f"{sorted(ENTRY_KEYS)}, got {entry!r}"
            )
        for key in (EPOCH, STEP):
            if not is_int(entry[key]) or entry[key] < 0:
                raise ValueError(
                    f"forever.load_state_dict: {where}[{key!r}] must be an int >= 0, "
                    f"got {entry[key]!r}"
                )
        consumed = entry[CONSUMED]
        if not (
            isinstance(consumed, list)
            and len(consumed) in (0, *shards)
            and all(is_int(n) and n >= 0 for n in consumed)
        ):
            raise ValueError(
                f"forever.load_state_dict: {where}['consumed'] must be a list of "
                f"{' or '.join(map(str, shards))} ints >= 0 (samples per shard), got {consumed!r}"
            )


def resized(
    ranks: list[Any], layers: list[list[int]], sharded: bool
) -> tuple[int, int, list[list[int]]]:
    """Where a job resized from `ranks` starts: the epoch, the step, and the layers that
    say what of the epoch was delivered (the ranks' own counts added as the last one; for
    a sharded generator one layer, the items delivered per old shard, see _resharded)."""
    if any(entry is None for entry in ranks):
        raise incomplete(
            ranks,
            "a resume under another world_size, workers or batch_size deals the rest of "
            "the epoch afresh from every rank's position",
        )
    epochs = {entry[EPOCH] for entry in ranks}
    if len(epochs) > 1:
        raise ValueError(
            "forever.load_state_dict: the ranks were saved in different epochs "
            f"({', '.join(f'rank {r}: {e[EPOCH]}' for r, e in enumerate(ranks))}), so "
            "there is no one epoch to deal the rest of; wrap the loader in "
            "loopline.even(...) so that every rank ends each epoch together"
        )
    if not all(entry[CONSUMED] for entry in ranks):
        raise ValueError(
            "forever.load_state_dict: state['ranks'] holds no samples per shard "
            "('consumed' is empty), so the rest of the epoch is unknown"
        )
    step = max(entry[STEP] for entry in ranks)
    if sharded and layers:  # each rank counted what it carried on, per old shard
        total = [sum(counts) for counts in zip(*layers, *(e[CONSUMED] for e in ranks), strict=True)]
        return epochs.pop(), step, [total]
    return epochs.pop(), step, [*layers, [n for entry in ranks for n in entry[CONSUMED]]]


def incomplete(ranks: list[Any], need: str) -> ValueError:
    """The error for a state that lacks ranks a resume needs."""
    held = [rank for rank, entry in enumerate(ranks) if entry is not None]
    return ValueError(
        f"forever.load_state_dict: {need}, but the state holds only rank(s) {held} of "
        f"{len(ranks)}; under torch.distributed call state_dict() on every rank (it gathers "
        "them all), else join every rank's state with loopline.merge_states(states)"
    )
