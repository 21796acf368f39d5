"""The training loader as a PyTorch ``IterableDataset`` (torch is optional)."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info


def _as_torch(column: np.ndarray) -> Any:
    # Numbers become tensors; strings and other objects stay a list.
    if column.dtype.kind in "biuf":
        return torch.from_numpy(column)
    return column.tolist()


class TorchBatches(IterableDataset):
    """Batches of a ``spectradb.TensorLoader`` as torch tensors.

    The batches are already made (and decoded on spectradb's threads), so
    use ``DataLoader(dataset, batch_size=None)`` with ``num_workers=0``:
    worker processes would be forked copies that cannot run spectradb.
    """

    def __init__(self, loader: Any) -> None:
        super().__init__()
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        info = get_worker_info()
        if info is not None:
            raise RuntimeError(
                "spectradb's loader decodes on its own threads (workers=): "
                "use DataLoader(..., batch_size=None, num_workers=0)"
            )
        for images, *rest in self.loader:
            yield (torch.from_numpy(images), *(_as_torch(c) for c in rest))
