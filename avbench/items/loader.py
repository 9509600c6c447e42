"""Ready items through a torch DataLoader, so decoding and mixing overlap compute.

Errors are carried as values: a worker never raises, so one broken file
becomes one failed item with its message, not a dead loader.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from ..suites.manifest import Item
from ..suites.spec import Suite
from .sources import DataSource, ReadyItem, load_item


class _Items(Dataset):
    def __init__(self, source: DataSource, suite: Suite, items: Sequence[Item]):
        self.source, self.suite, self.items = source, suite, list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> ReadyItem | tuple[Item, str]:
        item = self.items[index]
        try:
            return load_item(self.source, self.suite, item)
        except DataError as exc:
            return (item, str(exc))


def default_workers() -> int:
    """One loader process beside the main one when there is a core to spare."""
    return 1 if (os.cpu_count() or 1) > 1 else 0


def batches(
    source: DataSource, suite: Suite, items: Sequence[Item], batch_size: int, workers: int | None = None
) -> Iterator[list[ReadyItem | tuple[Item, str]]]:
    """Batches of ready items (or (item, error) pairs), in manifest order."""
    if not items:
        return iter(())
    workers = default_workers() if workers is None else workers
    loader = DataLoader(
        _Items(source, suite, items),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )
    return iter(loader)
