"""Training on optax and Flax NNX: a jitted train step, an eval step, ``fit`` and checkpoints.

The model is split once (``nnx.split``) into a static graph and a
:class:`TrainState` pytree; the steps are pure functions
``(state, batch) -> (new_state, metrics)`` compiled once with ``jax.jit``, the
train step donating the old state's buffers. Nothing per step copies, hashes
or syncs the model: the user's module is refreshed (:meth:`Trainer.sync_model`)
only when asked, and at the end of :func:`fit`.

Inside the train step the loss gets :func:`jaxembed.regularization_loss` added
(table penalties and the activity penalties of this forward pass), only
``nnx.Param`` variables are differentiated and updated (frozen tables are
:class:`jaxembed.FrozenParam`), and :func:`jaxembed.apply_constraints` runs after
each optimizer update, as Keras does.

The update rule is one value: a plain optax transformation (or :func:`dense`) trains
every parameter densely; :func:`row_sparse` (``Trainer(model,
row_sparse(optax.adam(1e-3)), loss_fn)``) gives the model's trainable embedding
tables row-sparse gradients and applies the transformation to the touched rows
only (:func:`jaxembed.sparse.apply_row_sparse`): a step then costs ``O(batch)``,
not ``O(vocabulary)``. For a dense rule the "gradients + optimizer update" part
is one small function, :func:`dense_update`; pass another one with the same
signature as ``update=`` to change only that part.

Examples:
    >>> import optax
    >>> model = jaxembed.Embedding(4, 2, weights=jnp.array([[1., 1.], [1., 2.], [2., 2.], [3., 3.]]))
    >>> def loss_fn(model, batch):
    ...     return jnp.mean((model(batch["ids"]) - batch["target"]) ** 2)
    >>> trainer = Trainer(model, optax.sgd(0.5), loss_fn)
    >>> batch = {"ids": jnp.array([0, 1, 2, 1]), "target": jnp.zeros((4, 2))}
    >>> metrics = trainer.train_step(batch)
    >>> sorted(metrics), int(trainer.state.step)
    (['loss'], 1)
    >>> trainer.sync_model().embeddings[...][3].tolist()  # "mouse" was not looked up
    [3.0, 3.0]
"""

from jaxembed.train._batches import Batches
from jaxembed.train._callbacks import (
    Callback,
    EarlyStopping,
    History,
    ModelCheckpoint,
    TerminateOnNaN,
    TrainerLike,
)
from jaxembed.train._row_sparse import row_sparse_tables
from jaxembed.train._rules import Dense, RowSparse, UpdateRule, dense, row_sparse
from jaxembed.train._state import LossFn, RowSparseOptState, TrainState, UpdateFn
from jaxembed.train._step import dense_update, init_train_state, make_eval_step, make_train_step
from jaxembed.train._trainer import Trainer, fit

__all__ = [
    "TrainState",
    "RowSparseOptState",
    "row_sparse_tables",
    "UpdateRule",
    "Dense",
    "RowSparse",
    "dense",
    "row_sparse",
    "LossFn",
    "UpdateFn",
    "dense_update",
    "init_train_state",
    "make_train_step",
    "make_eval_step",
    "Trainer",
    "TrainerLike",
    "Batches",
    "History",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "fit",
]
