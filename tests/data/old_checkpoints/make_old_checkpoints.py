"""Writes the single-file ``.jxe`` checkpoints that ``tests/test_checkpoint_conversion.py`` reads.

They must come from the old code itself, so run this with an old jaxembed first on the path::

    git archive 040ed57 jaxembed | tar -x -C /tmp/jaxembed-0.1.0     # release 0.1.0
    PYTHONPATH=/tmp/jaxembed-0.1.0 python tests/data/old_checkpoints/make_old_checkpoints.py 0.1.0
    git archive ff85781 jaxembed | tar -x -C /tmp/jaxembed-ff85781   # the last single-file writer
    PYTHONPATH=/tmp/jaxembed-ff85781 python tests/data/old_checkpoints/make_old_checkpoints.py ff85781

For each TAG it writes, next to this script: ``TAG-dense.jxe`` (a trained Adam trainer),
``TAG-row-sparse.jxe`` (the same, trained row-sparsely), ``TAG-tree.jxe`` (a pytree with a
PRNG key, bfloat16, int8 NumPy and a scalar) and ``TAG-expected.npz`` (every leaf of the three,
as the old code held them, under ``<file>:<jax keystr>``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build():
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    import jaxembed

    class Tagger(nnx.Module):
        def __init__(self, seed: int = 0):
            self.embed = jaxembed.Embedding(10, 4, rngs=seed)
            self.head = nnx.Linear(4, 3, rngs=nnx.Rngs(seed))

        def __call__(self, ids):
            return self.head(self.embed(ids))

    def loss_fn(model, batch):
        return optax.softmax_cross_entropy_with_integer_labels(model(batch["ids"]), batch["y"]).mean()

    batches = [
        {"ids": jnp.array([i, (i + 3) % 10, (i + 5) % 10]), "y": jnp.array([i % 3, 1, 2])} for i in range(4)
    ]
    return Tagger, loss_fn, batches, np


def trainer(row_sparse: bool, seed: int = 0):
    """A trainer of the fixtures' model, built with whichever API the jaxembed on the path has."""
    import optax

    from jaxembed import train

    Tagger, loss_fn, _, _ = build()
    if not row_sparse:
        return train.Trainer(Tagger(seed), optax.adam(0.05), loss_fn)
    if hasattr(train, "row_sparse"):  # after 0.1.0: the rule is one value
        return train.Trainer(Tagger(seed), train.row_sparse(optax.adam(0.05)), loss_fn)
    return train.Trainer(Tagger(seed), optax.adam(0.05), loss_fn, row_sparse=True)


def tree():
    import jax
    import jax.numpy as jnp
    import numpy as np

    return {
        "bf16": jnp.arange(5, dtype=jnp.bfloat16) / 3,
        "key": jax.random.key(3),
        "ints": np.arange(4, dtype=np.int8),
        "scalar": 2.5,
        "nested": (jnp.arange(6.0).reshape(2, 3), [jnp.float32(np.pi)]),
    }


def main(tag: str) -> None:
    import jax
    import numpy as np

    from jaxembed import checkpoint

    _, _, batches, _ = build()
    expected = {}

    def record(name, state):
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
            is_key = isinstance(leaf, jax.Array) and jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key)
            expected[f"{name}:{jax.tree_util.keystr(path)}"] = np.asarray(
                jax.random.key_data(leaf) if is_key else leaf
            )

    for name, row_sparse in (("dense", False), ("row-sparse", True)):
        model_trainer = trainer(row_sparse)
        for batch in batches:
            model_trainer.train_step(batch)
        model_trainer.save(HERE / f"{tag}-{name}.jxe")
        record(name, model_trainer.state)
    checkpoint.save_checkpoint(HERE / f"{tag}-tree.jxe", tree(), metadata={"note": f"written by {tag}"})
    record("tree", tree())
    np.savez(HERE / f"{tag}-expected.npz", **expected)
    print(f"wrote {tag}-dense.jxe, {tag}-row-sparse.jxe, {tag}-tree.jxe, {tag}-expected.npz")


if __name__ == "__main__":
    main(sys.argv[1])
