import os

import torch

# Workers and the main process share 2 cores; one intra-op thread each avoids thrashing.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
