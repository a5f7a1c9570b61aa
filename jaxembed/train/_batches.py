"""Batches: shuffled minibatches of in-memory arrays."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxembed._checks import positive_int


class Batches:
    """Re-iterable mini-batches of a pytree of arrays, reshuffled every epoch from a seed.

    Args:
        data: a pytree (dict, tuple, array) of arrays sharing the leading axis.
        batch_size: examples per batch.
        shuffle: draw a new permutation each epoch (NumPy ``Generator`` seeded by ``seed``).
        seed: the shuffling seed; the same seed gives the same batches, epoch by epoch.
        drop_remainder: drop the last short batch (keeps one compiled batch shape).

    Examples:
        >>> batches = Batches({"x": np.arange(5)}, batch_size=2, shuffle=False)
        >>> len(batches), [b["x"].tolist() for b in batches]
        (3, [[0, 1], [2, 3], [4]])
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_remainder: bool = False,
    ):
        leaves = jax.tree.leaves(data)
        if not leaves:
            raise ValueError("`data` has no arrays.")
        sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                f"Every array in `data` needs the same leading (example) axis. Received sizes {sizes}."
            )
        batch_size = positive_int("batch_size", batch_size)
        self.data = jax.tree.map(np.asarray, data)
        self.size = sizes.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        whole = self.size // self.batch_size
        return whole if self.drop_remainder or self.size % self.batch_size == 0 else whole + 1

    def __iter__(self):
        order = self._rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield jax.tree.map(lambda leaf: leaf[index], self.data)
