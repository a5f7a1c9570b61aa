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

The "gradients + optimizer update" part is one small function,
:func:`dense_update`; pass another one with the same signature as ``update=``
to change only that part. ``row_sparse=True`` (in :class:`Trainer`,
:func:`init_train_state`, :func:`make_train_step`) switches the model's
trainable embedding tables to row-sparse gradients and lazy updates
(:mod:`jaxembed.sparse`): a step then costs ``O(batch)``, not ``O(vocabulary)``.

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
from jaxembed.train._callbacks import Callback, EarlyStopping, History, ModelCheckpoint, TerminateOnNaN
from jaxembed.train._row_sparse import row_sparse_tables
from jaxembed.train._state import LossFn, RowSparseOptState, TrainState, UpdateFn
from jaxembed.train._step import dense_update, init_train_state, make_eval_step, make_train_step
from jaxembed.train._trainer import Trainer, fit

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
    "TerminateOnNaN",
    "fit",
]
