"""CheckpointManager (step folders, keep-N, best-N) and ModelCheckpoint / Trainer.restore with it."""

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxembed
from jaxembed.checkpoint import CheckpointError, CheckpointManager, read_checkpoint_metadata
from jaxembed.train import Callback, ModelCheckpoint, Trainer, fit


def tree(value):
    return {"w": jnp.full((3, 2), float(value)), "step": jnp.int32(value)}


LIKE = tree(0)


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_keeps_the_last_n_steps_lists_them_and_restores_any(tmp_path):
    manager = CheckpointManager(tmp_path / "run", max_to_keep=3)
    assert manager.all_steps() == [] and manager.latest_step() is None and manager.best_step() is None
    for step in (0, 5, 10, 15, 20):
        path = manager.save(step, tree(step), metrics={"loss": 1.0 / (step + 1)}, metadata={"note": "x"})
        assert path == tmp_path / "run" / str(step)
    assert manager.all_steps() == [10, 15, 20] == [int(n) for n in sorted(names(tmp_path / "run"), key=int)]
    assert manager.latest_step() == 20 == manager.best_step()  # without best_fn: the latest
    assert int(manager.restore(LIKE)["step"]) == 20
    assert int(manager.restore(LIKE, step=10)["step"]) == 10
    assert manager.metrics(15) == {"loss": 1.0 / 16}
    assert manager.metadata(15) == {"note": "x", "step": 15, "metrics": {"loss": 1.0 / 16}}
    assert read_checkpoint_metadata(manager.step_path(20))["step"] == 20
    with pytest.raises(
        FileNotFoundError, match=r"No complete checkpoint of step 5 .*the steps there are \[10, 15, 20\]"
    ):
        manager.restore(LIKE, step=5)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        manager.save(20, tree(21))
    manager.save(20, tree(21), overwrite=True)
    assert int(manager.restore(LIKE)["step"]) == 21
    with pytest.raises(FileNotFoundError, match="No complete checkpoint in"):
        CheckpointManager(tmp_path / "empty").restore(LIKE)


def test_keeps_the_best_n_and_always_the_newest(tmp_path):
    manager = CheckpointManager(tmp_path, max_to_keep=2, best_fn="val_loss")
    losses = {1: 0.9, 2: 0.3, 3: float("nan"), 4: 0.5, 5: 0.7, 6: float("inf")}
    for step, loss in losses.items():
        manager.save(step, tree(step), metrics={"val_loss": loss})
    # 2 and 4 are the best two; 6 (inf) stays as the newest; NaN/inf never rank as the best
    assert manager.all_steps() == [2, 4, 6]
    assert manager.best_step() == 2
    maximize = CheckpointManager(tmp_path / "acc", max_to_keep=1, best_fn=lambda m: m["acc"], best_mode="max")
    for step, acc in [(1, 0.5), (2, 0.9), (3, 0.1), (4, float("nan"))]:
        maximize.save(step, tree(step), metrics={"acc": acc})
    assert maximize.all_steps() == [2, 4] and maximize.best_step() == 2
    unscored = CheckpointManager(tmp_path / "none", max_to_keep=1, best_fn="loss")
    unscored.save(1, tree(1))
    unscored.save(2, tree(2), metrics={"other": 1.0})
    assert unscored.all_steps() == [2] and unscored.best_step() is None


def test_leftovers_of_killed_saves_and_deletes_are_ignored_then_cleaned(tmp_path):
    manager = CheckpointManager(tmp_path, max_to_keep=5)
    manager.save(1, tree(1))
    manager.save(2, tree(2))
    (tmp_path / ".3.new-abc").mkdir()  # a save of step 3 killed while writing
    (tmp_path / ".3.new-abc" / "junk").write_text("half")
    (tmp_path / "2").rename(tmp_path / ".2.old-xyz")  # an overwrite of step 2 killed between its renames
    (tmp_path / ".7.deleted-q").mkdir()  # a delete killed after its rename
    (tmp_path / "9").mkdir()  # a folder without a manifest is not a step
    assert manager.all_steps() == [1, 2]  # step 2 put back
    assert int(manager.restore(LIKE)["step"]) == 2
    manager.save(4, tree(4))
    assert names(tmp_path) == ["1", "2", "4", "9"]


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(
        ValueError, match=r"`max_to_keep` must be a positive integer or None. Received: max_to_keep=0"
    ):
        CheckpointManager(tmp_path, max_to_keep=0)
    with pytest.raises(
        ValueError, match=r"`best_mode` must be one of \('min', 'max'\). Received: best_mode='best'"
    ):
        CheckpointManager(tmp_path, best_mode="best")
    with pytest.raises(
        TypeError, match=r"`best_fn` must be a metric name, .* Received: best_fn=3 \(of type int\)"
    ):
        CheckpointManager(tmp_path, best_fn=3)
    manager = CheckpointManager(tmp_path)
    with pytest.raises(ValueError, match=r"`step` must be >= 0. Received: step=-1"):
        manager.save(-1, LIKE)
    with pytest.raises(TypeError, match=r"`step` must be an integer >= 0. Received: step=1.5"):
        manager.save(1.5, LIKE)
    with pytest.raises(
        ValueError, match=r"`metrics` must be a dict of numbers. Received: metrics\['loss'\]='low'"
    ):
        manager.save(1, LIKE, metrics={"loss": "low"})
    with pytest.raises(ValueError, match=r"`metadata` may not use the keys \['step'\]"):
        manager.save(1, LIKE, metadata={"step": 3})
    assert manager.all_steps() == []


def embedding_trainer(seed=0):
    model = jaxembed.Embedding(6, 2, rngs=seed)
    return Trainer(model, optax.adam(0.1), lambda m, ids: jnp.mean((m(ids) - 1.0) ** 2))


class FakeValidation(Callback):
    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, epoch, logs, trainer):
        logs["val_loss"] = self.values[epoch]


def test_model_checkpoint_into_a_manager_keeps_the_best_and_the_trainer_restores_from_it(tmp_path):
    manager = CheckpointManager(tmp_path / "run", max_to_keep=2, best_fn="val_loss")
    saver = ModelCheckpoint(manager, monitor="val_loss", save_best_only=True)
    trainer = embedding_trainer()
    batches = [jnp.array([0, 1]), jnp.array([2, 3])]  # 2 steps per epoch
    values = [2.0, 1.0, 1.5, float("nan"), 0.5]
    fit(trainer, batches, epochs=5, callbacks=[FakeValidation(values), saver], progress=False)
    # epochs 1, 2 and 5 improved (steps 2, 4, 10); the two best are kept, the newest is among them
    assert [p.rsplit("/", 1)[-1] for p in saver.saved] == ["2", "4", "10"]
    assert manager.all_steps() == [4, 10] and manager.best_step() == 10
    assert manager.metrics(4)["val_loss"] == 1.0 and math.isfinite(manager.metrics(4)["loss"])
    fresh = embedding_trainer(seed=1)
    assert fresh.restore(manager) == 10
    np.testing.assert_array_equal(fresh.model.embeddings[...], trainer.model.embeddings[...])
    assert fresh.restore(manager, step=4) == 4
    with pytest.raises(ValueError, match="`step` is for a CheckpointManager"):
        fresh.restore(tmp_path / "run" / "4", step=4)
    with pytest.raises(TypeError, match="saves into a CheckpointManager"):
        saver.file_path(0, {})


def test_model_checkpoint_into_a_manager_keeps_the_last_epochs(tmp_path):
    manager = CheckpointManager(tmp_path, max_to_keep=2)
    trainer = embedding_trainer()
    fit(trainer, [jnp.array([0, 1])], epochs=4, callbacks=[ModelCheckpoint(manager)], progress=False)
    assert manager.all_steps() == [3, 4]
    with pytest.raises(CheckpointError, match="does not match the model"):
        manager.restore({"other": jnp.zeros(1)})
