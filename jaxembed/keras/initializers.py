"""Keras initializers by name and config, as JAX initializer functions.

Every initializer is a frozen dataclass whose fields are Keras's config keys
and which is called like a JAX initializer: ``init(key, shape, dtype)``.
``get`` accepts what Keras accepts: a name (``"uniform"``), a Keras config dict,
an instance, or any callable ``(key, shape, dtype) -> array`` such as
``jax.nn.initializers.normal(0.1)``.

As in Keras, an initializer made with ``seed=`` ignores the key it is given and
always draws the same values; without a seed it draws from the key.

Examples:
    >>> init = get("uniform")
    >>> init
    RandomUniform(minval=-0.05, maxval=0.05, seed=None)
    >>> table = init(jax.random.key(0), (1000, 64), jnp.float32)
    >>> table.shape, bool(abs(table).max() <= 0.05)
    ((1000, 64), True)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxembed._checks import one_of
from jaxembed.keras._objects import KerasObject, KerasObjects

__all__ = [
    "Initializer",
    "RandomUniform",
    "RandomNormal",
    "TruncatedNormal",
    "Zeros",
    "Ones",
    "Constant",
    "Identity",
    "Orthogonal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "get",
    "serialize",
    "initialize_table",
    "CHUNK_ROWS",
]

Shape = tuple[int, ...]


class Initializer(KerasObject):
    """Base class: ``__call__(key, shape, dtype)`` draws from ``seed`` if set, else ``key``."""

    seed: int | None = None

    def _key(self, key: jax.Array) -> jax.Array:
        return jax.random.key(self.seed) if self.seed is not None else key

    def __call__(self, key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        return self.sample(self._key(key), tuple(shape), dtype)

    def sample(self, key: jax.Array, shape: Shape, dtype: Any) -> jax.Array:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class RandomUniform(Initializer):
    """Uniform on ``[minval, maxval)``; Keras's ``"uniform"`` default is ±0.05."""

    minval: float = -0.05
    maxval: float = 0.05
    seed: int | None = None

    def sample(self, key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, self.minval, self.maxval)


@dataclasses.dataclass(frozen=True)
class RandomNormal(Initializer):
    """Normal with ``mean`` and ``stddev`` (Keras default 0.05)."""

    mean: float = 0.0
    stddev: float = 0.05
    seed: int | None = None

    def sample(self, key, shape, dtype):
        return self.mean + self.stddev * jax.random.normal(key, shape, dtype)


@dataclasses.dataclass(frozen=True)
class TruncatedNormal(Initializer):
    """Normal truncated at two standard deviations, as in Keras."""

    mean: float = 0.0
    stddev: float = 0.05
    seed: int | None = None

    def sample(self, key, shape, dtype):
        return self.mean + self.stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


@dataclasses.dataclass(frozen=True)
class Zeros(Initializer):
    """All zeros."""

    def sample(self, key, shape, dtype):
        return jnp.zeros(shape, dtype)


@dataclasses.dataclass(frozen=True)
class Ones(Initializer):
    """All ones."""

    def sample(self, key, shape, dtype):
        return jnp.ones(shape, dtype)


@dataclasses.dataclass(frozen=True)
class Constant(Initializer):
    """Every entry equal to ``value``."""

    value: float = 0.0

    def sample(self, key, shape, dtype):
        return jnp.full(shape, self.value, dtype)


@dataclasses.dataclass(frozen=True)
class Identity(Initializer):
    """``gain`` times the (rectangular) identity matrix."""

    gain: float = 1.0

    def sample(self, key, shape, dtype):
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D shape. Received: shape={shape}.")
        return self.gain * jnp.eye(*shape, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``."""

    gain: float = 1.0
    seed: int | None = None

    def sample(self, key, shape, dtype):
        return jax.nn.initializers.orthogonal(scale=self.gain)(key, shape, dtype)


_DISTRIBUTIONS = {
    "truncated_normal": "truncated_normal",
    "untruncated_normal": "normal",
    "uniform": "uniform",
}
_MODES = ("fan_in", "fan_out", "fan_avg")


@dataclasses.dataclass(frozen=True)
class VarianceScaling(Initializer):
    """Keras's VarianceScaling; for a ``(rows, cols)`` table fan_in=rows, fan_out=cols."""

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"
    seed: int | None = None

    def __post_init__(self):
        if self.scale <= 0:
            raise ValueError(f"`scale` must be positive. Received: scale={self.scale}.")
        one_of("mode", self.mode, _MODES)
        one_of("distribution", self.distribution, tuple(_DISTRIBUTIONS))

    @classmethod
    def from_config(cls, config):
        # Keras 3 also writes ``input_axes``/``output_axes``; for 2-D tables they are None.
        config = dict(config)
        for axes in ("input_axes", "output_axes"):
            value = config.pop(axes, None)
            if value is not None:
                raise ValueError(
                    f"{cls.__name__} with a custom {axes!r} is not supported for embedding tables; "
                    f"fan_in is input_dim and fan_out is output_dim. Received: {axes}={value!r}."
                )
        return super().from_config(config)

    def sample(self, key, shape, dtype):
        init = jax.nn.initializers.variance_scaling(
            self.scale, self.mode, _DISTRIBUTIONS[self.distribution], in_axis=-2, out_axis=-1
        )
        return init(key, shape, dtype)


class _PresetVarianceScaling(VarianceScaling):
    """VarianceScaling with a fixed scale, mode and distribution; the config is just the seed."""

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


def _preset(name: str, scale: float, mode: str, distribution: str, doc: str) -> type:
    """A VarianceScaling subclass whose scale, mode and distribution are fixed (not arguments)."""
    fixed = [
        (field, type(value), dataclasses.field(default=value, init=False, repr=False))
        for field, value in (("scale", scale), ("mode", mode), ("distribution", distribution))
    ]
    cls = dataclasses.make_dataclass(name, fixed, bases=(_PresetVarianceScaling,), frozen=True)
    cls.__module__, cls.__doc__ = __name__, doc
    return cls


GlorotUniform = _preset(
    "GlorotUniform", 1.0, "fan_avg", "uniform", "Uniform within ±sqrt(6 / (fan_in + fan_out))."
)
GlorotNormal = _preset(
    "GlorotNormal",
    1.0,
    "fan_avg",
    "truncated_normal",
    "Truncated normal, stddev sqrt(2 / (fan_in + fan_out)).",
)
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform", "Uniform within ±sqrt(6 / fan_in).")
HeNormal = _preset(
    "HeNormal", 2.0, "fan_in", "truncated_normal", "Truncated normal, stddev sqrt(2 / fan_in)."
)
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform", "Uniform within ±sqrt(3 / fan_in).")
LecunNormal = _preset(
    "LecunNormal", 1.0, "fan_in", "truncated_normal", "Truncated normal, stddev sqrt(1 / fan_in)."
)

_CLASSES = [
    RandomUniform,
    RandomNormal,
    TruncatedNormal,
    Zeros,
    Ones,
    Constant,
    Identity,
    Orthogonal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
]
_ALIASES = {
    "uniform": RandomUniform,
    "random_uniform": RandomUniform,
    "normal": RandomNormal,
    "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "zeros": Zeros,
    "zero": Zeros,
    "ones": Ones,
    "one": Ones,
    "constant": Constant,
    "identity": Identity,
    "orthogonal": Orthogonal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
}
_REGISTRY = KerasObjects("initializer", "keras.initializers", _CLASSES, _ALIASES)


def get(identifier: Any) -> Callable[..., jax.Array]:
    """Resolves a Keras initializer identifier (name, config dict, instance or callable).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
        TypeError: for something that is not an identifier at all.

    Examples:
        >>> get("glorot_uniform")
        GlorotUniform(seed=None)
        >>> get({"class_name": "RandomNormal", "config": {"stddev": 0.1}})
        RandomNormal(mean=0.0, stddev=0.1, seed=None)
    """
    if identifier is None:
        raise ValueError("`embeddings_initializer` cannot be None; Keras's default is 'uniform'.")
    return _REGISTRY.get(identifier)


def serialize(initializer: Callable) -> dict[str, Any] | Callable:
    """Keras's serialized dict for a jaxembed initializer; other callables come back unchanged.

    Examples:
        >>> serialize(get("uniform"))["class_name"]
        'RandomUniform'
    """
    return _REGISTRY.serialize(initializer)


# ------------------------------------------------------------------- tables drawn chunk by chunk
CHUNK_ROWS = 1 << 16
"""Rows drawn at a time by :func:`initialize_table` (a float32 chunk of 64 columns is 16 MiB)."""


def _chunk_sampler(initializer: Callable, shape: Shape) -> Callable[..., jax.Array] | None:
    """``sample(key, start, rows, dtype)`` drawing rows ``start:start + rows`` of a ``shape`` table,
    or ``None`` when the initializer is not row-separable (Orthogonal)."""
    rows_total, cols = shape
    if isinstance(initializer, Orthogonal):
        return None
    if isinstance(initializer, Identity):
        gain = initializer.gain

        def identity(key, start, rows, dtype):
            row = start + jnp.arange(rows)[:, None]
            return (gain * (row == jnp.arange(cols)[None, :])).astype(dtype)

        return identity
    if isinstance(initializer, VarianceScaling):
        fan = {"fan_in": rows_total, "fan_out": cols, "fan_avg": (rows_total + cols) / 2}[initializer.mode]
        variance = initializer.scale / max(1.0, fan)
        distribution = _DISTRIBUTIONS[initializer.distribution]

        def variance_scaling(key, start, rows, dtype):
            # jax.nn.initializers.variance_scaling's draws, with the fan of the whole table.
            chunk = (rows, cols)
            if distribution == "truncated_normal":
                stddev = jnp.sqrt(variance) / 0.87962566103423978
                return jax.random.truncated_normal(key, -2, 2, chunk, dtype) * stddev.astype(dtype)
            if distribution == "normal":
                return jax.random.normal(key, chunk, dtype) * jnp.sqrt(variance).astype(dtype)
            return jax.random.uniform(key, chunk, dtype, -1) * jnp.sqrt(3 * variance).astype(dtype)

        return variance_scaling
    if isinstance(initializer, Initializer):
        return lambda key, start, rows, dtype: initializer.sample(key, (rows, cols), dtype)
    return lambda key, start, rows, dtype: initializer(key, (rows, cols), dtype)


def initialize_table(
    initializer: Any,
    key: jax.Array,
    shape: Shape,
    dtype: Any = jnp.float32,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> jax.Array:
    """Draws a ``(rows, cols)`` table from a Keras initializer without a full-size float32 temporary.

    A table of at most ``chunk_rows`` rows is exactly ``initializer(key, shape, dtype)``.
    A larger one is drawn ``chunk_rows`` rows at a time -- each chunk in float32
    from ``fold_in(key, chunk_number)`` (the initializer's own seed first, if it has
    one), cast to ``dtype`` and written in place into the table -- so the peak is the
    table in ``dtype`` plus one float32 chunk: a 10⁸-row bfloat16 table of 64
    columns needs 12.8 GB, not 25.6 GB more for a float32 draw. Every chunk follows
    the initializer's distribution for the *whole* table (VarianceScaling uses the
    full table's fans, Identity is the rectangular identity); Orthogonal, which is
    not separable by rows, is drawn whole.

    Args:
        initializer: anything :func:`get` accepts.
        key: a JAX PRNG key.
        shape: ``(rows, cols)``.
        dtype: the table's dtype (e.g. ``jnp.bfloat16``).
        chunk_rows: rows drawn at a time.

    Returns:
        The ``shape`` table in ``dtype``.

    Raises:
        ValueError: ``shape`` is not two positive sizes, or ``chunk_rows`` is not positive.

    Examples:
        >>> table = initialize_table("glorot_uniform", jax.random.key(0), (100_000, 8), jnp.bfloat16)
        >>> limit = (6 / 100_008) ** 0.5  # Glorot: the fans of the whole table, not of a chunk
        >>> table.dtype, table.shape, bool(abs(table.astype(float)).max() <= limit * 1.01)
        (dtype(bfloat16), (100000, 8), True)
    """
    shape = tuple(shape)
    if len(shape) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
        raise ValueError(f"`shape` must be (rows, cols) of non-negative ints. Received: shape={shape!r}.")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"`chunk_rows` must be a positive integer. Received: chunk_rows={chunk_rows!r}.")
    init = get(initializer)
    rows, cols = shape
    sampler = _chunk_sampler(init, shape)
    if rows <= chunk_rows or sampler is None:
        return jnp.asarray(init(key, shape, dtype), dtype)
    base = init._key(key) if isinstance(init, Initializer) else key
    full, rest = divmod(rows, chunk_rows)
    return _draw_in_chunks(sampler, base, rows, cols, jnp.dtype(dtype), chunk_rows, full, rest)


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 6, 7))
def _draw_in_chunks(sampler, key, rows, cols, dtype, chunk_rows, full, rest):
    def body(i, table):
        chunk = sampler(jax.random.fold_in(key, i), i * chunk_rows, chunk_rows, jnp.float32)
        return jax.lax.dynamic_update_slice_in_dim(table, chunk.astype(dtype), i * chunk_rows, axis=0)

    table = jax.lax.fori_loop(0, full, body, jnp.zeros((rows, cols), dtype))
    if rest:
        chunk = sampler(jax.random.fold_in(key, full), full * chunk_rows, rest, jnp.float32)
        table = jax.lax.dynamic_update_slice_in_dim(table, chunk.astype(dtype), full * chunk_rows, axis=0)
    return table
