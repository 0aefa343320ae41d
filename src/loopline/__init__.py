"""loopline: PyTorch data that does not flow in a straight line.

Streams that never stop (`forever`, `even`, `EpochSampler`), generator-backed
datasets sharded across workers and ranks (`from_generator`, `current_shard`), and
batches of variable-length data (`pad_collate`, `Padded`, `BucketSampler`, `bucket`),
feedback rollouts (`rollout`, `Rollout`, `converged`) and their horizon metrics
(`horizon_error`, `valid_time`, `plot_horizon`), training through them
(`unroll`, `unroll_windows`, `pushforward`, `scheduled_sampling`), and models combined
over a dict batch, every edge checked before a run (`Graph`, `Node`, `Concat`, `Spec`).
"""

from loopline import schedules
from loopline._endless import EmptyEpoch
from loopline.bucket import Bucketer, bucket
from loopline.bucket_sampler import BucketSampler
from loopline.collate import Padded, pad_collate
from loopline.distributed import Even, even
from loopline.forever import Forever, NotResumable, forever
from loopline.generator import GeneratorDataset, GeneratorFailed, from_generator
from loopline.graph import Concat, Graph, GraphError, Node
from loopline.metrics import StepMetric, horizon_error, plot_horizon, valid_time
from loopline.rollout import Rollout, converged, rollout
from loopline.sampler import EpochSampler
from loopline.shard import Shard, current_shard
from loopline.spec import Spec
from loopline.teacher import ScheduledSampling, Teacher, scheduled_sampling
from loopline.trajectory import RolloutDiverged, Trajectory
from loopline.unroll import Unrolled, pushforward, unroll, unroll_windows

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
    # batching
    "BucketSampler",
    "Bucketer",
    "Padded",
    "bucket",
    "pad_collate",
    # feedback rollouts
    "Rollout",
    "RolloutDiverged",
    "Trajectory",
    "converged",
    "rollout",
    # horizon metrics
    "StepMetric",
    "horizon_error",
    "plot_horizon",
    "valid_time",
    # training with feedback
    "ScheduledSampling",
    "Teacher",
    "Unrolled",
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
