"""Multi-hot bags: jaxembed.ops.embedding_bag, the NNX and Linen EmbeddingBag, torch and TF semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxembed
from jaxembed import linen, ops

RNG = np.random.default_rng(0)
TABLE = RNG.normal(size=(10, 3)).astype(np.float32)


def reference(table, bags, weights, combiner):
    """The textbook definition, bag by bag, in float64."""
    out = []
    for ids, w in zip(bags, weights):
        vectors = table[np.asarray(ids, int)].astype(np.float64)
        w = np.asarray(w, np.float64)
        total = (w[:, None] * vectors).sum(0) if len(ids) else np.zeros(table.shape[1])
        scale = {"sum": 1.0, "mean": w.sum(), "sqrtn": np.sqrt((w * w).sum())}[combiner]
        out.append(total / scale if scale else total)  # an empty bag: zeros
    return np.stack(out)


BAGS = [[1, 2, 3], [], [4], [5, 5, 9, 0]]
WEIGHTS = [[0.5, 2.0, 1.0], [], [3.0], [1.0, -0.5, 2.0, 0.25]]


def padded(bags, weights, size=4):
    ids = np.zeros((len(bags), size), np.int32)
    mask = np.zeros((len(bags), size), bool)
    w = np.zeros((len(bags), size), np.float32)
    for b, (bag, wb) in enumerate(zip(bags, weights)):
        ids[b, : len(bag)], mask[b, : len(bag)], w[b, : len(bag)] = bag, True, wb
    return ids, mask, w


def ragged(bags, weights):
    values = np.array([i for bag in bags for i in bag], np.int32)
    offsets = np.cumsum([0] + [len(bag) for bag in bags[:-1]]).astype(np.int32)
    w = np.array([x for wb in weights for x in wb], np.float32)
    return values, offsets, w


@pytest.mark.parametrize("combiner", ops.COMBINERS)
@pytest.mark.parametrize("weighted", [False, True])
def test_padded_and_ragged_bags_match_the_definition(combiner, weighted):
    weights = WEIGHTS if weighted else [[1.0] * len(bag) for bag in BAGS]
    expected = reference(TABLE, BAGS, weights, combiner)
    ids, mask, w = padded(BAGS, weights)
    got = ops.embedding_bag(TABLE, ids, combiner=combiner, mask=mask, weights=w if weighted else None)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    values, offsets, wr = ragged(BAGS, weights)
    got = ops.embedding_bag(
        TABLE, values, combiner=combiner, offsets=offsets, weights=wr if weighted else None
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(got)[1] == 0)  # the empty bag


def test_ragged_under_jit_compiles_once_and_handles_padding_values():
    traces = []

    @jax.jit
    def bag(values, offsets, mask):
        traces.append(1)
        return ops.embedding_bag(TABLE, values, offsets=offsets, mask=mask, combiner="sum")

    values, offsets, _ = ragged(BAGS, WEIGHTS)
    static = np.zeros(12, np.int32)  # a fixed capacity: padded values at the end are masked out
    static[: len(values)] = values
    mask = np.arange(12) < len(values)
    first = bag(static, offsets, mask)
    np.testing.assert_allclose(
        first, reference(TABLE, BAGS, [[1.0] * len(b) for b in BAGS], "sum"), atol=1e-6
    )
    bag(static[::-1].copy(), offsets, mask)
    assert len(traces) == 1


def test_masked_invalid_ids_do_not_poison_the_bag_but_unmasked_ones_give_nan():
    ids = jnp.array([[1, 99]])
    out = jax.jit(lambda i, m: ops.embedding_bag(TABLE, i, mask=m))(ids, jnp.array([[True, False]]))
    np.testing.assert_allclose(out, TABLE[[1]], rtol=1e-6)
    out = jax.jit(lambda i: ops.embedding_bag(TABLE, i))(ids)
    assert np.all(np.isnan(out))


def test_gradient_counts_each_id_once_per_use():
    ids = jnp.array([[2, 2, 7]])
    grad = jax.grad(lambda t: ops.embedding_bag(t, ids, combiner="sum").sum())(jnp.asarray(TABLE))
    assert (
        grad[2].tolist() == [2.0] * 3 and grad[7].tolist() == [1.0] * 3 and float(jnp.abs(grad).sum()) == 9.0
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"combiner": "max"}, "`combiner` must be one of"),
        ({"mask": np.ones((2, 3), bool)}, "`mask` must have the ids' shape"),
        ({"weights": np.ones(2)}, "`weights` must have the ids' shape"),
    ],
)
def test_bad_bag_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ops.embedding_bag(TABLE, np.zeros((2, 2), np.int32), **kwargs)


@pytest.mark.parametrize("offsets", [[1, 2], [0, 3, 2], [0, 9]])
def test_bad_offsets(offsets):
    with pytest.raises(ValueError, match=r"`offsets` must start at 0, never decrease.*Received: offsets="):
        ops.embedding_bag(TABLE, np.arange(4), offsets=np.array(offsets))


def test_ragged_needs_1d_ids():
    with pytest.raises(ValueError, match="Ragged bags take 1-D ids"):
        ops.embedding_bag(TABLE, np.zeros((2, 2), np.int32), offsets=np.array([0]))


def test_nnx_and_linen_bags_agree_and_share_the_embedding_config():
    ids = jnp.array([[3, 0, 0], [1, 2, 0]])
    bag = jaxembed.EmbeddingBag(10, 3, combiner="sqrtn", mask_zero=True, weights=TABLE)
    module = linen.EmbeddingBag(10, 3, combiner="sqrtn", mask_zero=True, weights=TABLE)
    out = bag(ids)
    np.testing.assert_allclose(out, module.apply(module.init(jax.random.key(0), ids), ids), rtol=1e-6)
    np.testing.assert_allclose(out, reference(TABLE, [[3], [1, 2]], [[1.0], [1.0, 1.0]], "sqrtn"), rtol=1e-6)
    assert bag.compute_output_shape((None, 3)) == (None, 3)
    config = bag.get_config()
    assert config["combiner"] == "sqrtn" and config["input_dim"] == 10 and config["mask_zero"] is True
    assert module.get_config() == config
    again = jaxembed.EmbeddingBag.from_config(config, rngs=0)
    assert again.combiner == "sqrtn" and again.embeddings.shape == (10, 3)
    # The same initializer code as Embedding: same seed, same table.
    same = jaxembed.Embedding(10, 3, rngs=nnx.Rngs(4)).embeddings[...]
    np.testing.assert_array_equal(jaxembed.EmbeddingBag(10, 3, rngs=nnx.Rngs(4)).embeddings[...], same)
    with pytest.raises(ValueError, match="`combiner` must be one of"):
        jaxembed.EmbeddingBag(10, 3, combiner="max")


# ----------------------------------------------------------------------- torch
@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_equals_torch_embedding_bag(mode):
    torch = pytest.importorskip("torch", reason="the torch comparison needs the compare extra")
    weight = torch.tensor(TABLE)
    bag = jaxembed.EmbeddingBag(10, 3, combiner=mode, weights=TABLE)
    reference_bag = torch.nn.EmbeddingBag.from_pretrained(weight, mode=mode)
    values, offsets, w = ragged(BAGS, WEIGHTS)
    expected = reference_bag(torch.tensor(values, dtype=torch.long), torch.tensor(offsets, dtype=torch.long))
    np.testing.assert_allclose(bag(values, offsets=offsets), expected.numpy(), rtol=1e-6, atol=1e-7)
    # 2-D input: fixed-size bags.
    ids = RNG.integers(0, 10, size=(5, 4))
    expected = reference_bag(torch.tensor(ids))
    np.testing.assert_allclose(bag(ids), expected.numpy(), rtol=1e-6, atol=1e-7)
    # padding_idx=0 is mask_zero=True (id 0 leaves the bag and the mean's count).
    padded_bag = torch.nn.EmbeddingBag.from_pretrained(weight, mode=mode, padding_idx=0)
    ids[0, 1:] = 0
    ours = jaxembed.EmbeddingBag(10, 3, combiner=mode, mask_zero=True, weights=TABLE)
    np.testing.assert_allclose(ours(ids), padded_bag(torch.tensor(ids)).numpy(), rtol=1e-6, atol=1e-7)
    if mode == "sum":  # torch takes per_sample_weights with mode="sum" only
        expected = reference_bag(
            torch.tensor(values, dtype=torch.long),
            torch.tensor(offsets, dtype=torch.long),
            per_sample_weights=torch.tensor(w),
        )
        np.testing.assert_allclose(bag(values, offsets=offsets, weights=w), expected.numpy(), rtol=1e-6)


def test_gradients_equal_torch():
    torch = pytest.importorskip("torch", reason="the torch comparison needs the compare extra")
    values, offsets, w = ragged(BAGS, WEIGHTS)
    weight = torch.tensor(TABLE, requires_grad=True)
    torch.nn.functional.embedding_bag(
        torch.tensor(values, dtype=torch.long),
        weight,
        torch.tensor(offsets, dtype=torch.long),
        mode="sum",
        per_sample_weights=torch.tensor(w),
    ).pow(2).sum().backward()
    grad = jax.grad(
        lambda t: (ops.embedding_bag(t, values, offsets=offsets, weights=w, combiner="sum") ** 2).sum()
    )
    np.testing.assert_allclose(grad(jnp.asarray(TABLE)), weight.grad.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ TensorFlow
@pytest.mark.parametrize("combiner", ops.COMBINERS)
def test_equals_tf_embedding_lookup_sparse_where_bags_are_not_empty(combiner):
    tf = pytest.importorskip("tensorflow", reason="the TensorFlow comparison needs the compare extra")
    bags, weights = BAGS[:-1] + [BAGS[-1]], WEIGHTS  # the empty bag is in the middle
    indices = [[b, k] for b, bag in enumerate(bags) for k in range(len(bag))]
    values, offsets, w = ragged(bags, weights)
    shape = [len(bags), 4]
    sp_ids = tf.sparse.SparseTensor(indices, values.astype(np.int64), shape)
    sp_weights = tf.sparse.SparseTensor(indices, w, shape)
    expected = tf.nn.embedding_lookup_sparse(
        tf.constant(TABLE), sp_ids, sp_weights, combiner=combiner
    ).numpy()
    got = ops.embedding_bag(TABLE, values, offsets=offsets, weights=w, combiner=combiner)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # Where the two differ: TF's result stops at the last non-empty bag; ours has every bag.
    longer = [len(bags) + 1, 4]
    tf_trailing = tf.nn.embedding_lookup_sparse(
        tf.constant(TABLE),
        tf.sparse.SparseTensor(indices, values.astype(np.int64), longer),
        tf.sparse.SparseTensor(indices, w, longer),
        combiner=combiner,
    )
    trailing = ops.embedding_bag(TABLE, values, offsets=np.append(offsets, len(values)), combiner=combiner)
    assert tf_trailing.shape == (len(bags), 3)
    assert trailing.shape == (len(bags) + 1, 3) and np.all(np.asarray(trailing)[-1] == 0)
