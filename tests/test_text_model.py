"""The text classifier of examples/text_classifier.py: masked pooling invariance and equality with Keras."""

import importlib.util
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from jaxembed import datasets
from jaxembed.keras.io import save_model
from jaxembed.text import TextVectorizer
from jaxembed.train import Batches, Trainer, fit

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("text_classifier", ROOT / "examples" / "text_classifier.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)

# Our Dense layers multiply at Precision.HIGHEST; Keras's are run under the same default here.
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def corpus():
    train, test = datasets.load_builtin().split(0.2)
    return train.subset(np.arange(0, len(train), 4)), test.subset(np.arange(48))


def _trained(corpus, length, **kwargs):
    train, _ = corpus
    vectorizer = TextVectorizer(2000, output_sequence_length=length)
    vectorizer.adapt(train.texts)
    model = example.build_model(
        vectorizer.vocabulary_size(), len(train.class_names), sequence_length=length, seed=1, **kwargs
    )
    trainer = Trainer(model, optax.adam(3e-3), example.classification_loss)
    data = {"ids": vectorizer(train.texts), "label": train.labels}
    history = fit(trainer, Batches(data, 64, seed=0, drop_remainder=True), epochs=2, progress=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    return model, vectorizer


def test_masked_average_ignores_padding_exactly(corpus):
    model, vectorizer = _trained(corpus, 40, embedding_dim=16, hidden=16)
    texts = corpus[1].texts[:16]
    longest = max(len(vectorizer.tokenize(t)) for t in texts)
    vectorizer.output_sequence_length = None  # pad to the longest text, then add more padding
    ids = vectorizer(texts)
    assert ids.shape[1] == longest
    predictions = [example.predict(model, np.pad(ids, ((0, 0), (0, extra)))) for extra in (0, 1, 7, 100)]
    for padded in predictions[1:]:
        np.testing.assert_allclose(padded, predictions[0], rtol=1e-6, atol=1e-7)
    # Without the mask, padding would change the prediction: the test can fail.
    unmasked = model.layers[1](model.layers[0](np.pad(ids, ((0, 0), (0, 100)))))
    masked = model.layers[1](model.layers[0](ids), mask=model.layers[0].compute_mask(ids))
    assert not np.allclose(unmasked, masked, atol=1e-3)


def _keras_model(keras, ours, length, pooling):
    embed = ours.layers[0]
    layers = [keras.Input((length,), dtype="int32")]
    if pooling == "average":
        layers += [keras.layers.Embedding(embed.input_dim, embed.output_dim, mask_zero=True)]
        layers += [keras.layers.GlobalAveragePooling1D()]
    else:
        layers += [keras.layers.Embedding(embed.input_dim, embed.output_dim, input_length=length)]
        layers += [keras.layers.Flatten()]
    layers += [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(len(ours.layers[-1].bias[...]))]
    model = keras.Sequential(layers)
    dense = [layer for layer in ours.layers if hasattr(layer, "kernel")]
    weights = [np.asarray(embed.embeddings[...])]
    for layer in dense:
        weights += [np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])]
    model.set_weights(weights)
    return model


@pytest.mark.parametrize(("pooling", "dim", "length"), [("average", 32, 64), ("flatten", 64, 50)])
def test_same_architecture_in_keras_with_the_same_weights_predicts_the_same(corpus, pooling, dim, length):
    keras = pytest.importorskip("keras", reason="the differential tests need keras (the test extra)")
    ours, vectorizer = _trained(corpus, length, embedding_dim=dim, hidden=16, pooling=pooling)
    twin = _keras_model(keras, ours, length, pooling)
    ids = vectorizer(corpus[1].texts)  # real texts: short ones padded, long ones truncated
    assert (ids[:, -1] == 0).any() and (ids[:, -1] != 0).any()
    ours.eval()
    with jax.default_matmul_precision("highest"):
        expected = np.asarray(twin(ids, training=False))
        got = np.asarray(ours(ids))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert (got.argmax(-1) == expected.argmax(-1)).all()


def test_saved_classifier_opens_in_keras_and_predicts_the_same(corpus, tmp_path):
    keras = pytest.importorskip("keras", reason="the differential tests need keras (the test extra)")
    ours, vectorizer = _trained(corpus, 64, embedding_dim=16, hidden=16)
    save_model(ours, tmp_path / "model.keras", input_length=64)
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    ids = vectorizer(corpus[1].texts)
    with jax.default_matmul_precision("highest"):
        expected = np.asarray(loaded(ids, training=False))
    np.testing.assert_allclose(np.asarray(ours(ids)), expected, rtol=RTOL, atol=ATOL)
