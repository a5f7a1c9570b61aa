"""The behaviour docs/how-embeddings-work.md states, checked (one test per claim).

The optimizer table: which rows an optimizer moves in a step that does not look them up. Each
case takes two steps on the cat/dog/snake/mouse table: step 1 looks up only "mouse" (id 3),
step 2 only "cat" and "dog" (ids 0, 1). "snake" (id 2) is never looked up.
"""

import re
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.experimental import checkify

import jaxembed
from jaxembed.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "how-embeddings-work.md"
M = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [3.0, 3.0]], np.float32)  # cat, dog, snake, mouse
MOUSE, SNAKE = 3, 2

# The table's three rows: only looked-up rows / also rows seen before / every row.
ONLY_LOOKED_UP, ALSO_SEEN_BEFORE, EVERY_ROW = "only looked up", "also seen before", "every row"
OPTAX_CASES = {
    "sgd": (lambda: optax.sgd(0.1), {}, ONLY_LOOKED_UP),
    "rmsprop": (lambda: optax.rmsprop(0.1), {}, ONLY_LOOKED_UP),
    "adagrad": (lambda: optax.adagrad(0.1), {}, ONLY_LOOKED_UP),
    "sgd momentum": (lambda: optax.sgd(0.1, momentum=0.9), {}, ALSO_SEEN_BEFORE),
    "adam": (lambda: optax.adam(0.1), {}, ALSO_SEEN_BEFORE),
    "nadam": (lambda: optax.nadam(0.1), {}, ALSO_SEEN_BEFORE),
    "adamw": (lambda: optax.adamw(0.1), {}, EVERY_ROW),
    "lion": (lambda: optax.lion(0.1), {}, EVERY_ROW),
    "sgd + l2 regularizer": (lambda: optax.sgd(0.1), {"embeddings_regularizer": "l2"}, EVERY_ROW),
    "adam + l1 regularizer": (lambda: optax.adam(0.1), {"embeddings_regularizer": "l1"}, EVERY_ROW),
}


def loss(model, ids):
    return jnp.mean(model(ids) ** 2)  # every looked-up row has a non-zero gradient


def two_steps_optax(make_optimizer, layer_kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables (before, after step 1, after step 2)."""
    layer = jaxembed.Embedding(4, 2, weights=M, **layer_kwargs)
    trainer = Trainer(layer, make_optimizer(), loss)
    tables = [M.copy()]
    for ids in ([MOUSE], [0, 1]):
        trainer.train_step(jnp.array(ids))
        tables.append(np.array(trainer.state.params["embeddings"][...]))
    return tuple(tables)


def category(before, after_1, after_2) -> str:
    mouse_moves_in_step_2 = bool((after_2[MOUSE] != after_1[MOUSE]).any())
    snake_moves = bool((after_2[SNAKE] != before[SNAKE]).any())
    if snake_moves:
        return EVERY_ROW
    return ALSO_SEEN_BEFORE if mouse_moves_in_step_2 else ONLY_LOOKED_UP


@pytest.mark.parametrize("name", list(OPTAX_CASES))
def test_optimizer_table_cell(name):
    make, kwargs, expected = OPTAX_CASES[name]
    before, after_1, after_2 = two_steps_optax(make, kwargs)
    assert (after_2[[0, 1]] != after_1[[0, 1]]).any(axis=1).all()  # the looked-up rows move
    assert category(before, after_1, after_2) == expected
    if expected == ONLY_LOOKED_UP:  # "moves by exactly 0", not by a tiny amount
        assert np.array_equal(after_2[MOUSE], after_1[MOUSE]) and np.array_equal(after_2[SNAKE], M[SNAKE])


def test_the_page_table_lists_the_tested_optimizers():
    text = PAGE.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "rows that move" not in line]
    table = "\n".join(rows[:4])
    only, seen, every = (r for r in table.splitlines() if not r.startswith("|---"))
    assert all(name in only for name in ("plain SGD", "rmsprop", "adagrad")) and "only the rows" in only
    assert all(name in seen for name in ("momentum", "adam", "nadam")) and "earlier step" in seen
    assert all(name in every for name in ("adamw", "lion", "embeddings_regularizer")) and "every row" in every


KERAS_CASES = {
    "SGD": (lambda k: k.optimizers.SGD(0.1), ONLY_LOOKED_UP),
    "RMSprop": (lambda k: k.optimizers.RMSprop(0.1), ONLY_LOOKED_UP),
    "Adagrad": (lambda k: k.optimizers.Adagrad(0.1), ONLY_LOOKED_UP),
    "SGD momentum": (lambda k: k.optimizers.SGD(0.1, momentum=0.9), ALSO_SEEN_BEFORE),
    "Adam": (lambda k: k.optimizers.Adam(0.1), ALSO_SEEN_BEFORE),
    "Nadam": (lambda k: k.optimizers.Nadam(0.1), ALSO_SEEN_BEFORE),
    "AdamW": (lambda k: k.optimizers.AdamW(0.1), EVERY_ROW),
    "Lion (no weight decay by default)": (lambda k: k.optimizers.Lion(0.1), ALSO_SEEN_BEFORE),
    "Lion weight_decay=0.01": (lambda k: k.optimizers.Lion(0.1, weight_decay=0.01), EVERY_ROW),
    "SGD + l2 regularizer": (lambda k: k.optimizers.SGD(0.1), EVERY_ROW),
}


def two_steps_keras(name):
    keras = pytest.importorskip("keras", reason="the Keras comparison needs keras (KERAS_BACKEND=jax)")
    make, _ = KERAS_CASES[name]
    regularizer = "l2" if "regularizer" in name else None
    layer = keras.layers.Embedding(4, 2, weights=[M], embeddings_regularizer=regularizer)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), layer])
    model.compile(optimizer=make(keras), loss="mse")
    tables = [M.copy()]
    for ids in ([MOUSE], [0, 1]):
        model.train_on_batch(np.array([ids]), np.zeros((1, len(ids), 2)))
        tables.append(np.array(layer.get_weights()[0]))
    return tuple(tables)


@pytest.mark.parametrize("name", list(KERAS_CASES))
def test_keras_optimizers_fall_in_the_same_rows(name):
    before, after_1, after_2 = two_steps_keras(name)
    assert category(before, after_1, after_2) == KERAS_CASES[name][1]


def test_keras_adam_moves_mouse_by_the_same_amount_as_optax_adam():
    _, k1, k2 = two_steps_keras("Adam")
    _, o1, o2 = two_steps_optax(OPTAX_CASES["adam"][0], {})
    np.testing.assert_allclose(k2[MOUSE] - k1[MOUSE], -0.067, atol=5e-4)
    np.testing.assert_allclose(k2[MOUSE] - k1[MOUSE], o2[MOUSE] - o1[MOUSE], atol=1e-6)


def test_the_keras_block_runs_on_its_own():
    # The page says this block stands alone; run it in an empty namespace.
    pytest.importorskip("keras", reason="the block imports keras")
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)
    keras_blocks = [b for b in blocks if "import keras" in b]
    assert len(keras_blocks) == 1
    exec(compile(keras_blocks[0], "how-embeddings-work.md (Keras block)", "exec"), {"__name__": "standalone"})


@pytest.mark.parametrize(
    ("rows", "ids", "seed"), [(5, 4_000, 0), (5, 40_000, 1), (2, 100_000, 2), (50, 20_000, 3)]
)
def test_take_and_one_hot_gradients_agree_to_float_rounding_with_repeated_ids(rows, ids, seed):
    # "each entry differs by at most 1e-6 times the sum of the absolute values it adds up".
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(rows, 8)).astype(np.float32)
    batch = jnp.asarray(rng.integers(0, rows, size=ids))
    weights = jnp.asarray(rng.normal(size=(ids, 8)).astype(np.float32))
    outputs, grads = {}, {}
    for lookup in ("take", "one_hot"):
        layer = jaxembed.Embedding(rows, 8, weights=table, lookup=lookup)
        outputs[lookup] = np.asarray(layer(batch))
        grads[lookup] = np.asarray(nnx.grad(lambda m: jnp.sum(m(batch) * weights))(layer)["embeddings"][...])
    assert np.array_equal(outputs["take"], outputs["one_hot"])  # outputs: identical
    scale = np.asarray(jax.ops.segment_sum(jnp.abs(weights), batch, rows))
    assert np.all(np.abs(grads["take"] - grads["one_hot"]) <= 1e-6 * scale)


def test_take_and_one_hot_gradients_are_identical_without_repeats():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(1000, 8)).astype(np.float32)
    batch = jnp.asarray(rng.permutation(1000)[:300])
    weights = jnp.asarray(rng.normal(size=(300, 8)).astype(np.float32))
    grads = [
        nnx.grad(lambda m: jnp.sum(m(batch) * weights))(jaxembed.Embedding(1000, 8, weights=table, lookup=lk))
        for lk in ("take", "one_hot")
    ]
    assert np.array_equal(grads[0]["embeddings"][...], grads[1]["embeddings"][...])


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_non_finite_row_changes_only_its_own_output_on_both_paths(bad):
    table = M.copy()
    table[SNAKE, 0] = bad
    ids = jnp.array([0, 1, 3, 2])
    take = np.asarray(jaxembed.Embedding(4, 2, weights=table, lookup="take")(ids))
    one_hot = np.asarray(jaxembed.Embedding(4, 2, weights=table, lookup="one_hot")(ids))
    naive = np.asarray(jax.nn.one_hot(ids, 4) @ jnp.asarray(table))
    assert np.isnan(naive[:3, 0]).all()  # a plain one-hot product: 0 × inf and 0 × NaN are NaN
    np.testing.assert_array_equal(take[:3], M[[0, 1, 3]])  # only the id that looks it up
    assert not np.isfinite(take[3, 0])
    np.testing.assert_array_equal(one_hot, take)  # jaxembed's one-hot path equals take


def test_checkify_needs_the_checkify_wrapper():
    layer = jaxembed.Embedding(4, 2, weights=M, invalid_ids="checkify")
    with pytest.raises(ValueError, match="not functionalized"):  # even valid ids fail without it
        jax.jit(lambda m, ids: m(ids))(layer, jnp.array([2, 1]))
    checked = checkify.checkify(jax.jit(lambda m, ids: m(ids)))
    error, out = checked(layer, jnp.array([2, 1]))
    error.throw()
    np.testing.assert_array_equal(out, M[[2, 1]])
    error, _ = checked(layer, jnp.array([2, -1]))
    with pytest.raises(checkify.JaxRuntimeError, match="found invalid id -1"):
        error.throw()


def test_input_length_is_accepted_without_a_warning_where_keras_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = jaxembed.Embedding(1000, 64, input_length=50, rngs=0)
    assert layer.compute_output_shape((None, None)) == (None, 50, 64)
    with pytest.raises(ValueError, match="`input_length` is 50"):
        layer(np.zeros((2, 49), np.int32))
    keras = pytest.importorskip("keras", reason="the comparison needs keras")
    with pytest.warns(UserWarning, match="`input_length` is deprecated"):
        with warnings.catch_warnings():
            warnings.filterwarnings("default", message="Argument `input_length` is deprecated")
            keras.layers.Embedding(1000, 64, input_length=50)
