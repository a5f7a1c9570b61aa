"""The preprocessing layers without an oracle (fast): output shapes agree with the calls, configs
round-trip through the one config reader, and the lookups' shared constructor arguments.

The comparisons with TensorFlow and real Keras are in test_hashing.py / test_lookups.py and in
tests/keras_suite/."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxembed

SHAPES = [(7,), (1,), (7, 1), (3, 4), (2, 3, 4)]


@pytest.mark.parametrize("output_mode", ["one_hot", "multi_hot", "count"])
def test_hashing_and_category_encoding_shapes_agree_with_their_calls(output_mode):
    for shape in SHAPES:
        ids = jnp.asarray(np.arange(int(np.prod(shape))).reshape(shape) % 5, jnp.int32)
        for layer in (
            jaxembed.CategoryEncoding(5, output_mode),
            jaxembed.Hashing(5, output_mode=output_mode),
        ):
            # Traced (no compile): the shape the call gives, through each layer's own path to the encoder.
            assert jax.eval_shape(layer, ids).shape == layer.compute_output_shape(shape), (layer, shape)
    # Concretely, on the host, the case whose shapes used to disagree: one id of shape (1,).
    hashing = jaxembed.Hashing(5, output_mode=output_mode)
    expected = (1, 5) if output_mode == "one_hot" else (5,)  # one id vs one sample of one id
    assert hashing(np.array([3])).shape == hashing.compute_output_shape((1,)) == expected


def test_one_hot_of_a_column_drops_its_trailing_axis_in_both_layers():
    column = np.array([[3], [0], [4]])
    for layer in (jaxembed.CategoryEncoding(5, "one_hot"), jaxembed.Hashing(5, output_mode="one_hot")):
        assert layer(column).shape == (3, 5) == layer.compute_output_shape((3, 1))
        assert layer.compute_output_shape((None, 1)) == (None, 5)
    np.testing.assert_array_equal(
        jaxembed.CategoryEncoding(5, "one_hot")(column), np.eye(5, dtype=np.float32)[[3, 0, 4]]
    )


@pytest.mark.parametrize(
    "layer",
    [
        jaxembed.CategoryEncoding(6, output_mode="count", name="enc", dtype="float32"),
        jaxembed.Hashing(6, salt=3, mask_value="", output_mode="multi_hot", name="h"),
        jaxembed.HashedCrossing(6, output_mode="one_hot", name="x"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_configs_round_trip_and_refuse_unknown_keys(layer):
    cls = type(layer)
    config = layer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    # Keras writes a serialized DTypePolicy and `trainable`; both are read.
    keras_style = {
        **config,
        "trainable": True,
        "dtype": {"class_name": "DTypePolicy", "config": {"name": "float32"}},
    }
    assert cls.from_config(keras_style).dtype == np.float32 or config["output_mode"] == "int"
    with pytest.raises(
        ValueError, match=rf"Unrecognized keyword argument\(s\) in the {cls.__name__} config: \['bogus'\]"
    ):
        cls.from_config({**config, "bogus": 1})
    with pytest.raises(TypeError, match="`config` must be a dict. Received: "):
        cls.from_config([("name", "x")])


@pytest.mark.parametrize("cls", [jaxembed.StringLookup, jaxembed.IntegerLookup])
def test_lookup_constructors_share_their_arguments(cls):
    vocabulary = ["a", "b", "c"] if cls is jaxembed.StringLookup else [10, 20, 30]
    layer = cls(max_tokens=10, num_oov_indices=2, vocabulary=vocabulary, output_mode="count", name="n")
    assert (layer.max_tokens, layer.num_oov_indices, layer.output_mode, layer.name) == (10, 2, "count", "n")
    assert layer.vocabulary_size() == 5
    # Keras's config-only keys are accepted and ignored; vocabulary_size survives a round trip
    # of a layer whose vocabulary is not in its config.
    empty = cls(vocabulary_size=7, has_input_vocabulary=False, trainable=True, dtype="int64")
    assert empty.get_config()["vocabulary_size"] == 7
    assert cls.from_config(empty.get_config()).get_config() == empty.get_config()
    with pytest.raises(
        ValueError, match=rf"Unrecognized keyword argument\(s\) for {cls.__name__}: \{{'bogus': 1\}}"
    ):
        cls(bogus=1)
    with pytest.raises(ValueError, match="`max_tokens` must be greater than 1"):
        cls(max_tokens=1)
    assert set(cls._config_keys()) >= {"max_tokens", "vocabulary", "salt", "oov_method", "name"}
