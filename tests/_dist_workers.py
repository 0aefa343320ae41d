"""Rank processes for tests/streams/test_distributed*.py.

`serve` is the body of one rank: a process started with the "spawn" method that waits
for commands and runs each in a fresh gloo process group, so that a scenario which
leaves the ranks out of step (the kind of bug these tests look for) ends in an error on
the peer as soon as the other rank destroys its group. Each command writes its outcome,
`{"result": ...}` or `{"error": traceback}`, to a JSON file that the test reads. The data
the scenarios load is in tests/_dist_data.py.

Everything here is module-level so that spawned ranks can import it.
"""

from __future__ import annotations

import io
import json
import os
import traceback
from collections.abc import Callable
from datetime import timedelta
from itertools import islice
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import loopline
from _dist_data import plain, resume_loader, uneven_loader
from utils import count_up, own_part

# ---------------------------------------------------------------- scenarios


def ddp_sync() -> float:
    """One all-reduce over all ranks, standing in for DDP's gradient sync."""
    grad = torch.ones(1)
    dist.all_reduce(grad)
    return float(grad.item())


def scenario_shards(
    rank: int,
    world_size: int,
    *,
    n: int,
    batch_size: int,
    num_workers: int,
    context: str | None,
    sharded: bool,
) -> dict[str, Any]:
    """One epoch of from_generator over range(n) on this rank."""
    dataset = loopline.from_generator(own_part if sharded else count_up, n, sharded=sharded)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        multiprocessing_context=context if num_workers else None,
    )
    shard = loopline.current_shard()
    return {
        "batches": [plain(batch) for batch in loader],
        "shard": [shard.index, shard.count, shard.rank, shard.world_size],
    }


def scenario_sampler(rank: int, world_size: int, *, n: int, seed: int, epochs: int) -> dict:
    """The indices EpochSampler gives this rank in each epoch, twice over."""
    sampler = loopline.EpochSampler(n, seed=seed)
    orders = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    again = []
    for epoch in reversed(range(epochs)):
        fresh = loopline.EpochSampler(n, seed=seed)
        fresh.set_epoch(epoch)
        again.insert(0, list(fresh))
    return {"orders": orders, "again": again, "len": len(sampler)}


def scenario_even(
    rank: int,
    world_size: int,
    *,
    style: str,
    num_workers: int,
    batches_per_rank: list[int],
    batch_size: int,
    epochs: int,
) -> dict[str, Any]:
    """Plain, even() and forever(even()) iteration of an uneven loader, with a DDP-like
    all-reduce after every step."""
    loader = uneven_loader(rank, style, num_workers, batches_per_rank, batch_size)
    alone = [plain(batch) for batch in loader]  # no collective: just this rank's batches

    one_epoch, one_epoch_syncs = [], []
    for batch in loopline.even(loader):
        one_epoch.append(plain(batch))
        one_epoch_syncs.append(ddp_sync())

    stream = loopline.forever(loopline.even(loader), epochs=epochs)
    endless, endless_syncs = [], []
    for batch in stream:
        endless.append([stream.epoch, plain(batch)])
        endless_syncs.append(ddp_sync())
    return {
        "alone": alone,
        "even": one_epoch,
        "even_syncs": one_epoch_syncs,
        "forever": endless,
        "forever_syncs": endless_syncs,
    }


def scenario_without_even(
    rank: int,
    world_size: int,
    *,
    style: str,
    num_workers: int,
    batches_per_rank: list[int],
    batch_size: int,
) -> dict[str, Any]:
    """Plain iteration of an uneven loader with a DDP-like all-reduce after every step.

    The rank with fewer batches leaves the loop and then destroys the process group; the
    other rank, blocked in an all-reduce nobody else joins, gets an error instead of
    hanging (and the group's short timeout bounds it otherwise).
    """
    loader = uneven_loader(rank, style, num_workers, batches_per_rank, batch_size)
    synced, error = 0, None
    try:
        for _batch in loader:
            ddp_sync()
            synced += 1
    except RuntimeError as failure:
        error = f"{type(failure).__name__}: {failure}"
    return {"synced": synced, "error": error}


def take(stream: loopline.Forever, steps: int) -> list[Any]:
    """`[epoch, batch]` for the next `steps` batches of `stream`."""
    return [[stream.epoch, plain(batch)] for batch in islice(stream, steps)]


def scenario_resume(
    rank: int,
    world_size: int,
    *,
    style: str,
    num_workers: int,
    even: bool,
    n: int,
    batch_size: int,
    seed: int,
    total: int,
    cuts: list[int],
) -> dict[str, Any]:
    """An uninterrupted forever() run, and runs stopped after each cut, saved through
    torch.save, restored into a fresh loader and forever(), and continued."""

    def fresh() -> loopline.Forever:
        return loopline.forever(resume_loader(rank, style, num_workers, even, n, batch_size, seed))

    reference = take(fresh(), total)
    resumed = {}
    for cut in cuts:
        stream = fresh()
        head = take(stream, cut)
        buffer = io.BytesIO()
        torch.save(stream.state_dict(), buffer)
        del stream
        buffer.seek(0)
        restored = fresh()
        restored.load_state_dict(torch.load(buffer, weights_only=True))
        resumed[str(cut)] = {
            "head": head,
            "tail": take(restored, total - cut),
            "step": restored.step,
        }
    return {"reference": reference, "resumed": resumed}


def scenario_rotation(
    rank: int, world_size: int, *, n: int, batch_size: int, epochs: int, num_workers: int
) -> list[list[int]]:
    """The items forever(even(...)) trains on in each epoch of a fixed-order generator."""
    dataset = loopline.from_generator(count_up, n)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    stream = loopline.forever(loopline.even(loader), epochs=epochs)
    seen: list[list[int]] = [[] for _ in range(epochs)]
    for batch in stream:
        seen[stream.epoch] += plain(batch)
        ddp_sync()
    return seen


SCENARIOS: dict[str, Callable[..., Any]] = {
    "shards": scenario_shards,
    "sampler": scenario_sampler,
    "even": scenario_even,
    "without_even": scenario_without_even,
    "resume": scenario_resume,
    "rotation": scenario_rotation,
}


# ---------------------------------------------------------------- the rank process


def run_command(
    rank: int, world_size: int, scenario: str, params: dict, store: Any, timeout_s: float
) -> dict[str, Any]:
    """Run one scenario in a fresh process group; its outcome as a JSON-able dict."""
    try:
        dist.init_process_group(
            "gloo",
            store=store,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
    except Exception:
        return {"error": traceback.format_exc()}
    try:
        return {"result": SCENARIOS[scenario](rank, world_size, **params)}
    except Exception:
        return {"error": traceback.format_exc()}
    finally:
        # Destroying the group closes its connections, so a peer still blocked in a
        # collective of this scenario fails at once instead of waiting for the timeout.
        dist.destroy_process_group()


def serve(rank: int, world_size: int, store_port: int, commands: Any) -> None:
    """Body of one rank: run commands from the queue until it sends None.

    The test process hosts a TCPStore on `store_port`; each command rendezvouses under
    its own key prefix there.
    """
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", store_port, is_master=False, timeout=timedelta(seconds=60))
    while True:
        command = commands.get()
        if command is None:
            return
        name, scenario, params, out, timeout_s = command
        prefixed = dist.PrefixStore(f"{name}/", store)
        outcome = run_command(rank, world_size, scenario, params, prefixed, timeout_s)
        partial = f"{out}.partial"
        with open(partial, "w") as file:
            json.dump(outcome, file)
        os.replace(partial, out)  # the test sees the file only once it is complete
