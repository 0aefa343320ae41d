"""Stand-ins for values the check runs nodes on: meta tensors of the same shapes, and
real tensors made from them when a node cannot run on meta.

Real stand-ins hold valid values for what usually reads them: ones for floats, zeros
for integers (index 0 exists in every embedding), true masks, full `Padded` lengths.
"""

from __future__ import annotations

from typing import Any

import torch

from loopline._tree import map_tensors
from loopline.batching.padded import Padded


def to_meta(value: Any) -> Any:
    """The same structure with every tensor replaced by a meta tensor of its shape."""
    return map_tensors(_meta_tensor, value)


def _meta_tensor(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.device.type == "meta" else torch.empty_like(tensor, device="meta")


def to_real(value: Any, device: torch.device) -> Any:
    """Real tensors shaped like the meta ones: ones for floats, zeros for integers (valid
    indices), true masks, and a `Padded` with every position real."""
    return map_tensors(
        lambda leaf: _real(leaf, device), value, leaf=lambda v: isinstance(v, Padded)
    )


def _real(value: torch.Tensor | Padded, device: torch.device) -> torch.Tensor | Padded:
    if isinstance(value, Padded):
        data = _real(value.data, device)
        assert isinstance(data, torch.Tensor)
        sizes = [value.data.shape[d + 1] for d in value.padded_dims()]  # the full extents
        lengths = torch.tensor(sizes, dtype=value.lengths.dtype).expand(len(data), -1)
        lengths = lengths if value.lengths.dim() == 2 else lengths[:, 0]
        mask = torch.ones(value.mask.shape, dtype=torch.bool, device=device)
        return Padded(data, mask, lengths.to(device).contiguous())
    if value.device.type != "meta":
        return value
    fill = 1 if value.dtype.is_floating_point or value.dtype.is_complex else 0
    fill = 1 if value.dtype == torch.bool else fill
    return torch.full(value.shape, fill, dtype=value.dtype, device=device)
