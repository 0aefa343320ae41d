"""Batching: samples of different sizes made into batches, with little padding.

`pad_collate` stacks what has one shape and pads what does not, returning `Padded`
(data, mask, lengths) so a model knows which elements are real. Bucketing keeps the
padding small by batching samples of similar length: `BucketSampler` for map-style
datasets (a pure function of seed and epoch), `bucket` for streams (a buffer sorted by
length, checkpointable). Both build on the epoch protocols of `loopline.streams`.
"""
