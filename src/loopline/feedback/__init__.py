"""Feedback: models whose output becomes their next input, run and trained that way.

`rollout` runs the loop `x -> model -> y -> feedback -> x` for N steps or until a
`StopCriterion` holds, per sample, and returns a `Trajectory`; `horizon_error` and
`valid_time` score it against the truth. `unroll` trains through the same loop with a
loss at every step and an explicit gradient policy (full, detached, truncated), with
teachers (`scheduled_sampling`) choosing the truth over the output, or its inputs taken
from the data (`inputs=`, one model call per window with `whole=True`); `unroll_windows`
cuts a long horizon into checkpointable `Windows`; `pushforward` is the one-step variant.
The part needs no other part of loopline: only torch and the helpers.
"""
