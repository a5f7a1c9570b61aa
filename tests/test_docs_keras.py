"""The behaviour docs/keras.md states about dtypes, checked against Keras 3 itself."""

import numpy as np
import pytest

import jaxembed

keras = pytest.importorskip("keras", reason="the comparison needs keras (KERAS_BACKEND=jax)")


def keras_layer(dtype):
    layer = keras.layers.Embedding(10, 4, dtype=dtype)
    layer.build((None,))
    return layer


def policy_name(config):
    return config["dtype"]["config"]["name"]


def test_mixed_bfloat16_is_the_same_as_keras():
    ours, theirs = jaxembed.Embedding(10, 4, dtype="mixed_bfloat16", rngs=0), keras_layer("mixed_bfloat16")
    assert str(ours.embeddings[...].dtype) == theirs.embeddings.dtype == "float32"
    assert str(ours(np.array([1])).dtype) == str(theirs(np.array([1])).dtype) == "bfloat16"
    assert policy_name(ours.get_config()) == policy_name(theirs.get_config()) == "mixed_bfloat16"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_plain_low_precision_dtype_differs_from_keras_as_documented(dtype):
    ours, theirs = jaxembed.Embedding(10, 4, dtype=dtype, rngs=0), keras_layer(dtype)
    assert theirs.embeddings.dtype == dtype and policy_name(theirs.get_config()) == dtype  # Keras
    assert str(ours.embeddings[...].dtype) == "float32"  # jaxembed: the table stays float32
    assert str(ours(np.array([1])).dtype) == dtype
    assert policy_name(ours.get_config()) == f"mixed_{dtype}"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_param_dtype_too_gives_keras_table_and_config(dtype):
    ours, theirs = jaxembed.Embedding(10, 4, dtype=dtype, param_dtype=dtype, rngs=0), keras_layer(dtype)
    assert str(ours.embeddings[...].dtype) == theirs.embeddings.dtype == dtype
    assert policy_name(ours.get_config()) == policy_name(theirs.get_config()) == dtype
    loaded = jaxembed.Embedding.from_config(theirs.get_config())
    assert str(loaded.embeddings[...].dtype) == dtype and str(loaded(np.array([1])).dtype) == dtype
