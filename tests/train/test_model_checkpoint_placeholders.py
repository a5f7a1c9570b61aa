"""`ModelCheckpoint` fills its path as Keras 3's ModelCheckpoint does (docs/training.md, Callbacks)."""

import os

import numpy as np
import optax
import pytest
from flax import nnx

import jaxembed
from jaxembed.train import Batches, ModelCheckpoint, Trainer, fit

KERAS_CASES = [
    ("ckpt-{epoch}.jxe", 0, {}),
    ("ckpt-{epoch:02d}-{val_loss:.2f}.jxe", 4, {"loss": 0.51234, "val_loss": 0.456789}),
    ("{loss:.3f}_{accuracy:.1f}_{epoch:03d}", 11, {"loss": 1.0, "accuracy": 0.25}),
]


@pytest.mark.parametrize(("path", "epoch", "logs"), KERAS_CASES)
def test_file_path_is_the_one_keras_writes(path, epoch, logs):
    from keras.callbacks import ModelCheckpoint as KerasModelCheckpoint

    keras_path = KerasModelCheckpoint(path + ".keras")._get_file_path(epoch, None, logs)
    assert ModelCheckpoint(path + ".keras").file_path(epoch, logs) == keras_path


def test_unknown_placeholder_names_the_path_and_the_keys():
    with pytest.raises(KeyError, match=r"Received: path='ckpt-\{val_acc\}.jxe'.*\['epoch', 'loss'\]"):
        ModelCheckpoint("ckpt-{val_acc}.jxe").file_path(0, {"loss": 1.0})


class _Tiny(nnx.Module):
    def __init__(self):
        self.embed = jaxembed.Embedding(3, 1, weights=np.zeros((3, 1)))

    def __call__(self, ids):
        return self.embed(ids)[..., 0]


def _loss(model, batch):
    return ((model(batch["ids"]) - batch["y"]) ** 2).mean()


def test_fit_writes_one_based_epochs_and_validation_logs(tmp_path):
    data = {"ids": np.array([0, 1, 2, 1]), "y": np.array([1.0, -1.0, 0.5, -1.0], np.float32)}
    trainer = Trainer(_Tiny(), optax.sgd(0.1), _loss)
    saver = ModelCheckpoint(tmp_path / "w-{epoch:02d}-{val_loss:.4f}.jxe")
    history = fit(
        trainer, Batches(data, 2, seed=0), epochs=2, validation_data=[data], callbacks=[saver], progress=False
    )
    expected = [f"w-{e + 1:02d}-{v:.4f}.jxe" for e, v in enumerate(history.history["val_loss"])]
    assert [os.path.basename(p) for p in saver.saved] == expected
    assert all(os.path.exists(p) for p in saver.saved)
