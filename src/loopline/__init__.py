"""loopline: PyTorch data that does not flow in a straight line.

Streams that never stop (`forever`, `even`, `EpochSampler`, `merge_states`), generator-backed
datasets sharded across workers and ranks (`from_generator`, `current_shard`), and
batches of variable-length data (`pad_collate`, `Padded`, `BucketSampler`, `bucket`),
feedback rollouts (`rollout`, `Rollout`, `converged`) and their horizon metrics
(`horizon_error`, `valid_time`, `plot_horizon`), training through them (`unroll`,
`unroll_windows`, `pushforward`, `PushforwardSteps`, `scheduled_sampling`), and models combined
over a dict batch, every edge checked before a run (`Graph`, `Node`, `Concat`, `Spec`).

This module is the whole public API; the parts live in `loopline.streams`,
`loopline.batching`, `loopline.feedback` and `loopline.compose` (see the README's
"Architecture").
"""

from loopline.batching.bucket import Bucketer, bucket
from loopline.batching.bucket_sampler import BucketSampler
from loopline.batching.collate import pad_collate
from loopline.batching.padded import Padded
from loopline.compose.graph import Graph
from loopline.compose.node import Concat, GraphError, Node
from loopline.compose.spec import Spec
from loopline.feedback import schedules
from loopline.feedback.criteria import converged
from loopline.feedback.metrics import StepMetric, horizon_error, plot_horizon, valid_time
from loopline.feedback.protocols import Feedback, ForcedFeedback, StepCallback, StopCriterion
from loopline.feedback.pushforward import PushforwardSteps, pushforward
from loopline.feedback.rollout import Rollout, rollout
from loopline.feedback.teacher import ScheduledSampling, Teacher, scheduled_sampling
from loopline.feedback.trajectory import RolloutDiverged, Trajectory
from loopline.feedback.unroll import unroll
from loopline.feedback.unrolled import Unrolled
from loopline.feedback.windows import Windows, unroll_windows
from loopline.streams.distributed import Even, even
from loopline.streams.errors import EmptyEpoch, GeneratorFailed, NotResumable
from loopline.streams.forever import Forever, forever
from loopline.streams.generator import GeneratorDataset, from_generator
from loopline.streams.job import merge_states
from loopline.streams.sampler import EpochSampler
from loopline.streams.shard import Shard, current_shard

__all__ = [
    # generator-backed datasets
    "GeneratorDataset",
    "GeneratorFailed",
    "Shard",
    "current_shard",
    "from_generator",
    # endless streams
    "EmptyEpoch",
    "EpochSampler",
    "Forever",
    "NotResumable",
    "forever",
    "merge_states",
    # batching
    "BucketSampler",
    "Bucketer",
    "Padded",
    "bucket",
    "pad_collate",
    # feedback rollouts
    "Feedback",
    "ForcedFeedback",
    "Rollout",
    "RolloutDiverged",
    "StepCallback",
    "StopCriterion",
    "Trajectory",
    "converged",
    "rollout",
    # horizon metrics
    "StepMetric",
    "horizon_error",
    "plot_horizon",
    "valid_time",
    # training with feedback
    "PushforwardSteps",
    "ScheduledSampling",
    "Teacher",
    "Unrolled",
    "Windows",
    "pushforward",
    "schedules",
    "scheduled_sampling",
    "unroll",
    "unroll_windows",
    # model composition
    "Concat",
    "Graph",
    "GraphError",
    "Node",
    "Spec",
    # distributed
    "Even",
    "even",
]
