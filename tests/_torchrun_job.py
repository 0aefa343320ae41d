"""One rank of the resized torchrun job (tests/streams/test_torchrun_resize.py).

`python -m torch.distributed.run ... _torchrun_job.py OUT first|second`: "first" trains
a DDP model over `forever(even(...))` of a from_generator stream for STEPS steps, takes
the job's state (a collective) and rank 0 saves it with the model; "second" loads both,
under whatever topology it was launched with, and trains to the end of epoch 0. Each rank
writes the samples it was given and its step count to OUT/<phase>-<rank>.json.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import loopline

SIZE, BATCH, STEPS = 42, 2, 3  # 42 items; the first job takes 3 steps of 2 on 4 ranks


def count_up(n: int):
    yield from range(n)


def main(out: Path, phase: str) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    workers = 2 if phase == "first" else 0  # the worker count changes too
    context = {"multiprocessing_context": "fork"} if workers else {}
    dataset = loopline.from_generator(count_up, SIZE, seed=3)
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=workers, **context)
    stream = loopline.forever(loopline.even(loader), epochs=1)
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(1, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    checkpoint = out / "checkpoint.pt"
    if phase == "second":
        saved = torch.load(checkpoint, weights_only=True)
        model.module.load_state_dict(saved["model"])
        stream.load_state_dict(saved["stream"])
    seen: list[int] = []
    for step, batch in enumerate(stream):
        seen += batch.tolist()
        loss = model(batch.float()[:, None]).square().mean()
        optimizer.zero_grad()
        loss.backward()  # DDP's all-reduce: a rank short of batches would hang here
        optimizer.step()
        if phase == "first" and step + 1 == STEPS:
            break
    state = stream.state_dict()  # every rank: it gathers the whole job's position
    if phase == "first" and rank == 0:
        torch.save({"stream": state, "model": model.module.state_dict()}, checkpoint)
    stream.close()
    result = {"seen": seen, "steps": stream.step, "world_size": dist.get_world_size()}
    (out / f"{phase}-{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    # Everything this rank had to do is done and written. gloo's teardown of several
    # processes on a loaded machine now and then aborts in its C++ destructors
    # ("terminate called without an active exception"), so leave without running them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
