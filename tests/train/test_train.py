"""jaxembed.train: one compile, the right rows move, penalties and constraints, determinism, fit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed.train import Batches, EarlyStopping, Trainer, dense_update, fit

SEED_TABLE = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [3.0, 3.0]], np.float32)  # cat, dog, snake, mouse
SEED_IDS = np.array([0, 1, 2, 1, 3, 0, 1, 2, 1])
# Attributes per animal: has fur, barks, purrs, slithers, squeaks.
ATTRIBUTES = np.array([[1, 0, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 1]], np.float32)
NO_MOUSE = {"ids": np.array([0, 1, 2, 1]), "y": ATTRIBUTES[[0, 1, 2, 1]]}


class Animals(nnx.Module):
    def __init__(self, seed: int = 0, **embedding_kwargs):
        embedding_kwargs.setdefault("weights", SEED_TABLE)
        self.embed = jaxembed.Embedding(4, 2, rngs=seed, **embedding_kwargs)
        self.head = nnx.Linear(2, 5, rngs=nnx.Rngs(seed))

    def __call__(self, ids):
        return self.head(self.embed(ids))


def bce(model, batch):
    logits = model(batch["ids"])
    loss = optax.sigmoid_binary_cross_entropy(logits, batch["y"]).mean()
    accuracy = jnp.mean((logits > 0) == (batch["y"] > 0.5))
    return loss, {"accuracy": accuracy}


def table(trainer):
    return np.asarray(trainer.state.params["embed"]["embeddings"][...])


def seed_batches(seed=0, batch_size=3):
    return Batches({"ids": SEED_IDS, "y": ATTRIBUTES[SEED_IDS]}, batch_size, seed=seed)


def test_train_step_compiles_once():
    traces = []

    def counting_loss(model, batch):
        traces.append(1)
        return bce(model, batch)

    trainer = Trainer(Animals(), optax.adam(0.1), counting_loss)
    history = fit(trainer, seed_batches(), epochs=4, progress=False)
    assert len(history.step_losses) == 12
    assert len(traces) == 1
    assert trainer._train_step._cache_size() == 1


def test_loss_decreases_on_the_animal_task():
    trainer = Trainer(Animals(), optax.adam(0.05), bce)
    history = fit(trainer, seed_batches(), epochs=60, progress=False)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] == 1.0


@pytest.mark.parametrize("lookup", ["take", "one_hot"])
def test_sgd_changes_exactly_the_looked_up_rows(lookup):
    trainer = Trainer(Animals(lookup=lookup), optax.sgd(0.5), bce)
    before = table(trainer)
    trainer.train_step(NO_MOUSE)
    after = table(trainer)
    changed = np.any(after != before, axis=1)
    assert changed.tolist() == [True, True, True, False]  # mouse (row 3) was not in the batch
    np.testing.assert_array_equal(after[3], before[3])


def test_adam_moves_a_row_once_seen_but_not_a_row_never_seen():
    trainer = Trainer(Animals(), optax.adam(0.1), bce)
    trainer.train_step({"ids": SEED_IDS, "y": ATTRIBUTES[SEED_IDS]})  # mouse seen once
    before = table(trainer)
    trainer.train_step(NO_MOUSE)
    after = table(trainer)
    assert np.all(after[3] != before[3])  # momentum keeps moving "mouse" without a gradient for it
    # The first moment is exactly what moved it: update = -lr * m_hat / (sqrt(v_hat) + eps), g = 0 for mouse.
    adam_state = trainer.state.opt_state[0]
    mu = np.asarray(adam_state.mu["embed"]["embeddings"][...])[3]
    nu = np.asarray(adam_state.nu["embed"]["embeddings"][...])[3]
    expected = -0.1 * (mu / (1 - 0.9**2)) / (np.sqrt(nu / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(after[3] - before[3], expected, rtol=0, atol=2e-6)  # float32 rows near 1

    never_seen = Trainer(Animals(), optax.adam(0.1), bce)
    start = table(never_seen)
    for _ in range(3):
        never_seen.train_step(NO_MOUSE)
    np.testing.assert_array_equal(table(never_seen)[3], start[3])  # m = v = 0: Adam leaves it alone


def test_sgd_leaves_a_row_once_seen_alone_afterwards():
    trainer = Trainer(Animals(), optax.sgd(0.5), bce)
    trainer.train_step({"ids": SEED_IDS, "y": ATTRIBUTES[SEED_IDS]})
    before = table(trainer)
    trainer.train_step(NO_MOUSE)
    np.testing.assert_array_equal(table(trainer)[3], before[3])


def test_table_regularization_is_in_the_loss_and_the_gradient():
    with jax.default_matmul_precision("highest"):
        plain = Trainer(Animals(), optax.sgd(0.5), bce)
        regularized = Trainer(Animals(embeddings_regularizer="l2"), optax.sgd(0.5), bce)
        plain_loss = plain.train_step(NO_MOUSE)["loss"]
        regularized_loss = regularized.train_step(NO_MOUSE)["loss"]
    penalty = 0.01 * np.sum(SEED_TABLE**2)
    np.testing.assert_allclose(regularized_loss, plain_loss + penalty, rtol=1e-6)
    # Weight decay reaches the row that was not looked up: mouse <- mouse - lr * 2 * 0.01 * mouse.
    np.testing.assert_allclose(table(regularized)[3], SEED_TABLE[3] * (1 - 0.5 * 0.02), rtol=1e-6)
    np.testing.assert_allclose(
        table(regularized)[:3], table(plain)[:3] - 0.5 * 0.02 * SEED_TABLE[:3], rtol=1e-5
    )


def test_activity_regularization_of_this_forward_pass_is_added():
    with jax.default_matmul_precision("highest"):
        plain = Trainer(Animals(), optax.sgd(0.0), bce)
        regularized = Trainer(Animals(activity_regularizer="l2"), optax.sgd(0.0), bce)
        difference = regularized.train_step(NO_MOUSE)["loss"] - plain.train_step(NO_MOUSE)["loss"]
    vectors = SEED_TABLE[NO_MOUSE["ids"]]
    np.testing.assert_allclose(difference, 0.01 * np.sum(vectors**2) / 4, rtol=1e-5)


def test_constraints_are_applied_after_each_update():
    def push_negative(model, batch):
        return jnp.sum(model.embed(batch["ids"]))

    trainer = Trainer(Animals(embeddings_constraint="non_neg"), optax.sgd(10.0), push_negative)
    trainer.train_step(NO_MOUSE)
    new = table(trainer)
    assert np.all(new >= 0)
    np.testing.assert_array_equal(new[:3], 0.0)  # 10 * gradient drove them below zero; projected back
    np.testing.assert_array_equal(new[3], SEED_TABLE[3])

    unconstrained = Trainer(
        Animals(embeddings_constraint="non_neg"), optax.sgd(10.0), push_negative, constraints=False
    )
    unconstrained.train_step(NO_MOUSE)
    assert np.all(table(unconstrained)[:3] < 0)


def test_frozen_tables_are_neither_differentiated_nor_optimized():
    model = Animals(trainable=False)
    trainer = Trainer(model, optax.adam(0.1), bce)
    paths = [
        jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(trainer.state.opt_state)[0]
    ]
    assert not any("embed" in p for p in paths)
    head_before = np.asarray(trainer.state.params["head"]["kernel"][...])
    for _ in range(3):
        trainer.train_step(NO_MOUSE)
    np.testing.assert_array_equal(np.asarray(trainer.state.rest["embed"]["embeddings"][...]), SEED_TABLE)
    assert np.any(np.asarray(trainer.state.params["head"]["kernel"][...]) != head_before)
    assert isinstance(trainer.sync_model().embed.embeddings, jaxembed.FrozenParam)


def test_the_users_model_survives_donation_and_is_updated_on_sync():
    model = Animals()
    trainer = Trainer(model, optax.sgd(0.5), bce)
    trainer.train_step(NO_MOUSE)
    np.testing.assert_array_equal(model.embed.embeddings[...], SEED_TABLE)  # still alive, not yet synced
    trainer.sync_model()
    np.testing.assert_array_equal(model.embed.embeddings[...], table(trainer))
    trainer.train_step(NO_MOUSE)  # donating the state must not delete the model's synced arrays
    assert np.isfinite(np.asarray(model.embed.embeddings[...])).all()


def test_same_seed_gives_the_same_loss_curve_bit_for_bit():
    def run(seed):
        model = Animals(seed=seed, embeddings_initializer="uniform", weights=None)
        trainer = Trainer(model, optax.adam(0.05), bce)
        history = fit(trainer, seed_batches(seed=seed), epochs=5, progress=False)
        return history.step_losses, table(trainer)

    losses_a, table_a = run(1)
    losses_b, table_b = run(1)
    losses_c, _ = run(2)
    assert losses_a == losses_b
    np.testing.assert_array_equal(table_a, table_b)
    assert losses_a != losses_c


def test_eval_step_uses_eval_mode_and_changes_nothing():
    class WithDropout(nnx.Module):
        def __init__(self):
            self.embed = jaxembed.Embedding(4, 2, weights=SEED_TABLE)
            self.drop = nnx.Dropout(0.9, rngs=nnx.Rngs(0))

        def __call__(self, ids):
            return self.drop(self.embed(ids))

    loss = lambda model, ids: jnp.sum(model(ids))  # noqa: E731
    trainer = Trainer(WithDropout(), optax.sgd(0.1), loss)
    step = int(trainer.state.step)
    assert float(trainer.eval_step(np.array([0, 3]))["loss"]) == 8.0  # no dropout: 1 + 1 + 3 + 3
    assert int(trainer.state.step) == step
    train_losses = {float(trainer.train_step(np.array([0, 3]))["loss"]) for _ in range(4)}
    assert len(train_losses) > 1  # dropout masks differ step to step (the rng state advances)


def test_fit_reports_validation_metrics_and_caps_steps():
    trainer = Trainer(Animals(), optax.adam(0.05), bce)
    validation = [{"ids": SEED_IDS, "y": ATTRIBUTES[SEED_IDS]}]
    history = fit(
        trainer, seed_batches(), epochs=3, steps_per_epoch=2, validation_data=validation, progress=False
    )
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(history.step_losses) == 6 and history.epoch == [0, 1, 2]
    assert int(trainer.state.step) == 6


def test_fit_shows_a_progress_bar(capsys):
    trainer = Trainer(Animals(), optax.adam(0.05), bce)
    fit(trainer, seed_batches(), epochs=2, progress=True, log_every=1)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "loss=" in err and "accuracy=" in err


def test_early_stopping_stops_and_restores_the_best_state():
    class Worsening(jaxembed.train.Callback):
        """Fakes a validation loss that is best at epoch 1, then rises."""

        def on_epoch_end(self, epoch, logs, trainer):
            logs["val_loss"] = [3.0, 1.0, 2.0, 2.5, 2.7, 3.0][epoch]

    trainer = Trainer(Animals(), optax.adam(0.05), bce)
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = fit(trainer, seed_batches(), epochs=6, callbacks=[Worsening(), stopper], progress=False)
    assert history.epoch == [0, 1, 2, 3] and stopper.stopped_epoch == 3
    assert int(trainer.state.step) == 6  # the state after epoch 1 (two epochs of 3 steps)


def test_the_update_function_is_swappable():
    calls = []

    def recording_update(optimizer, loss_of, params, opt_state):
        calls.append(1)
        return dense_update(optimizer, loss_of, params, opt_state)

    trainer = Trainer(Animals(), optax.sgd(0.5), bce, update=recording_update)
    trainer.train_step(NO_MOUSE)
    reference = Trainer(Animals(), optax.sgd(0.5), bce)
    reference.train_step(NO_MOUSE)
    assert calls == [1]
    np.testing.assert_array_equal(table(trainer), table(reference))


def test_bad_arguments_have_clear_messages():
    with pytest.raises(TypeError, match="optax.GradientTransformation.*Received: str"):
        Trainer(Animals(), "adam", bce)
    with pytest.raises(TypeError, match="flax.nnx.Module.*Received: dict"):
        Trainer({}, optax.sgd(0.1), bce)
    trainer = Trainer(Animals(), optax.sgd(0.1), lambda m, b: m(b["ids"]))
    with pytest.raises(ValueError, match=r"scalar loss.*shape \(4, 5\)"):
        trainer.train_step(NO_MOUSE)
    with pytest.raises(TypeError, match="`trainer` must be a jaxembed.train.Trainer.*Received: Animals"):
        fit(Animals(), [NO_MOUSE])
    with pytest.raises(ValueError, match="`epochs` must be a positive integer. Received: epochs=0"):
        fit(Trainer(Animals(), optax.sgd(0.1), bce), [NO_MOUSE], epochs=0)
    one_shot = iter([NO_MOUSE])
    with pytest.raises(ValueError, match="Epoch 1 got no batches.*re-iterable"):
        fit(Trainer(Animals(), optax.sgd(0.1), bce), one_shot, epochs=2, progress=False)
    with pytest.raises(
        KeyError, match="'val_loss' is not in the epoch logs; available: \\['accuracy', 'loss'\\]"
    ):
        fit(Trainer(Animals(), optax.sgd(0.1), bce), [NO_MOUSE], callbacks=[EarlyStopping()], progress=False)
    with pytest.raises(ValueError, match="same leading.*sizes"):
        Batches({"a": np.zeros(3), "b": np.zeros(4)}, 2)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer. Received: batch_size=0"):
        Batches(np.zeros(3), 0)


def test_batches_are_reshuffled_each_epoch_and_reproducible():
    a, b = Batches(np.arange(6), 2, seed=3), Batches(np.arange(6), 2, seed=3)
    epochs_a = [[x.tolist() for x in a] for _ in range(3)]
    epochs_b = [[x.tolist() for x in b] for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1]
    assert all(sorted(sum(epoch, [])) == list(range(6)) for epoch in epochs_a)
    assert [x.tolist() for x in Batches(np.arange(5), 2, shuffle=False, drop_remainder=True)] == [
        [0, 1],
        [2, 3],
    ]


def test_validation_reuses_one_compiled_eval_step():
    trainer = Trainer(Animals(), optax.adam(0.05), bce)
    validation = [{"ids": SEED_IDS[:3], "y": ATTRIBUTES[SEED_IDS[:3]]}] * 2
    fit(trainer, seed_batches(), epochs=3, validation_data=validation, progress=False)
    assert trainer._train_step._cache_size() == 1
    assert trainer._eval_step._cache_size() == 1
