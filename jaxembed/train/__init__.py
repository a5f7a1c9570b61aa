"""Training on optax: the functional step core, :class:`Trainer`, Keras-style :func:`fit` with callbacks.

Examples:
    >>> import optax
    >>> model = jaxembed.Embedding(4, 2, weights=jnp.ones((4, 2)))
    >>> trainer = Trainer(model, optax.sgd(0.5), lambda m, ids: m(ids).sum())
    >>> float(trainer.train_step(jnp.array([0]))["loss"])
    2.0
"""

from jaxembed.train._train import (
    Batches,
    Callback,
    EarlyStopping,
    History,
    LossFn,
    ModelCheckpoint,
    RowSparseOptState,
    Trainer,
    TrainState,
    UpdateFn,
    dense_update,
    fit,
    init_train_state,
    make_eval_step,
    make_train_step,
    row_sparse_tables,
)

__all__ = [
    "TrainState",
    "RowSparseOptState",
    "row_sparse_tables",
    "LossFn",
    "UpdateFn",
    "dense_update",
    "init_train_state",
    "make_train_step",
    "make_eval_step",
    "Trainer",
    "Batches",
    "History",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "fit",
]
