"""`Padded`: a batch of samples padded to one shape, with where the real elements are.

`pad_collate` makes one whenever the samples of a leaf differ in shape; a model reads
`.data`, and `.mask` or `.lengths` to ignore the padding. It unpacks as `data, mask,
lengths`, moves like a tensor (`.to`, `.pin_memory`) and gives its samples back
(`unpad`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class Padded(NamedTuple):
    """A padded batch: unpacks as `data, mask, lengths`.

    Attributes:
        data: `[B, *max_shape]`, padded with the pad value.
        mask: bool, true on real elements. Shape `[B, *sizes]` up to the last padded
            dimension, with size 1 on dimensions that were not padded, so it broadcasts
            against `data` (a sequence `[T_i, D]` gets a mask `[B, T]`).
        lengths: int64 per-sample sizes along the padded dimensions, `[B]` for one padded
            dimension, `[B, k]` for k.

    Example:
        >>> import torch, loopline
        >>> batch = loopline.pad_collate([torch.tensor([1, 2, 3]), torch.tensor([4])])
        >>> data, mask, lengths = batch
        >>> data.tolist(), mask.tolist(), lengths.tolist()
        ([[1, 2, 3], [4, 0, 0]], [[True, True, True], [True, False, False]], [3, 1])
        >>> [sample.tolist() for sample in batch.unpad()]
        [[1, 2, 3], [4]]
    """

    data: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor

    def to(self, *args: Any, **kwargs: Any) -> Padded:
        """Like `Tensor.to` (e.g. `.to("cuda", non_blocking=True)`): a device change moves
        all three tensors, a dtype change applies to `data` only."""
        data = self.data.to(*args, **kwargs)
        non_blocking = bool(kwargs.get("non_blocking", False))
        return Padded(
            data,
            self.mask.to(data.device, non_blocking=non_blocking),
            self.lengths.to(data.device, non_blocking=non_blocking),
        )

    def pin_memory(self, *args: Any) -> Padded:
        """Page-locked copies, so `DataLoader(pin_memory=True)` works."""
        return Padded(*(tensor.pin_memory(*args) for tensor in self))

    def unpad(self) -> list[torch.Tensor]:
        """The samples as they were before padding."""
        lengths = self.lengths[:, None] if self.lengths.dim() == 1 else self.lengths
        dims = self.padded_dims()
        samples = []
        for row, sizes in zip(self.data, lengths.tolist(), strict=True):
            index = [slice(None)] * row.dim()
            for dim, size in zip(dims, sizes, strict=True):
                index[dim] = slice(0, size)
            samples.append(row[tuple(index)])
        return samples

    def padded_dims(self) -> list[int]:
        """The dimensions of each sample (0 being the first after the batch) that padding
        made equal; `lengths` gives every sample's true size along them, in this order."""
        # The mask is full-sized on padded dims and 1 elsewhere; an unpadded dim of size 1
        # looks the same, so prefer dims larger than 1 when there are too many candidates.
        candidates = [
            d
            for d in range(self.mask.dim() - 1)
            if self.mask.shape[d + 1] == self.data.shape[d + 1]
        ]
        wanted = 1 if self.lengths.dim() == 1 else self.lengths.shape[-1]
        if len(candidates) > wanted:
            candidates = sorted(
                sorted(candidates, key=lambda d: self.data.shape[d + 1] == 1)[:wanted]
            )
        return candidates
