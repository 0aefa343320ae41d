"""Composition: models wired into one pipeline over a dict batch, checked before a run.

A `Node` is a callable with the keys it reads and the key it writes; a `Graph` orders
its nodes once (`_wiring`), writes its forward out as straight-line Python (`_plan`), and
checks every edge against its `Spec` on meta tensors (`_check`) without touching data.
`node` is the leaf every other module builds on, so nothing here imports the `Graph`.
"""
