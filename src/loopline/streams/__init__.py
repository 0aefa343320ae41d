"""Streams: where batches come from, epoch after epoch, and where a run stands in them.

A stream is a DataLoader (or any iterable of batches) that `forever` iterates across
epoch boundaries without a stall, giving each epoch its order through `set_epoch`. Its
position is a few plain integers per rank (epoch, batches and samples into it, see `job`),
which is what exact resume rests on, under the same topology or a resized one
(`_elastic`, `_resharded`); random draws are seeded per sample so they resume too
(`_rng`). Data comes from `from_generator` datasets split between shards (a shard is one
(rank, worker) pair, see `shard`), or from map-style datasets in an `EpochSampler` order;
`even` keeps the epochs of all ranks the same length (rotating what it leaves out). The
protocols a stage may follow (`set_epoch`, `state_dict`, replayable, batched) are declared
in `protocols`.
"""
