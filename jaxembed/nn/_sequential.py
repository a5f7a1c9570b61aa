"""Keras's Sequential for small text models, and Keras activations by name, as NNX modules."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxembed.nn._embedding import Embedding
from jaxembed.nn._pooling import Flatten, GlobalAveragePooling1D

__all__ = ["Activation", "KerasSequential"]


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=0.2),  # Keras 3's default slope
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # Keras's default is the exact erf form
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "tanh": jnp.tanh,
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
    "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "exponential": jnp.exp,
}


class Activation(nnx.Module):
    """A Keras activation by name (``"relu"``, ``"softmax"``, ...), applied elementwise / on the last axis.

    Args:
        name: a Keras activation name; see ``Activation.NAMES``.
        fused: it stands for a ``Dense`` layer's ``activation`` argument (so it
            writes no layer of its own) rather than a Keras ``Activation`` layer.

    Examples:
        >>> Activation("relu")(jnp.array([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    NAMES = tuple(_ACTIVATIONS)

    def __init__(self, name: str, *, fused: bool = False):
        if name not in _ACTIVATIONS:
            raise ValueError(f"Unsupported Keras activation {name!r}. Supported: {list(_ACTIVATIONS)}.")
        self.name = name
        self.fused = fused

    def __call__(self, x: jax.Array) -> jax.Array:
        return _ACTIVATIONS[self.name](x)


_KERAS_CLASS = {
    Embedding: "Embedding",
    GlobalAveragePooling1D: "GlobalAveragePooling1D",
    Flatten: "Flatten",
    nnx.Dropout: "Dropout",
    nnx.Linear: "Dense",
    Activation: "Activation",
}


def _keras_class(layer: nnx.Module) -> str:
    for kind, name in _KERAS_CLASS.items():
        if isinstance(layer, kind):
            return name
    raise TypeError(
        f"KerasSequential holds {list(_KERAS_CLASS.values())} layers (as jaxembed/NNX modules). "
        f"Received a {type(layer).__name__}."
    )


class KerasSequential(nnx.Module):
    """A chain of NNX layers with Keras's mask propagation: Keras's Sequential for small text models.

    The layers are :class:`jaxembed.Embedding`, :class:`jaxembed.GlobalAveragePooling1D`,
    :class:`jaxembed.Flatten`, ``nnx.Dropout``, ``nnx.Linear`` (Keras's Dense)
    and :class:`Activation`. An Embedding with ``mask_zero`` starts a padding
    mask; Dropout, Dense and activations pass it on; GlobalAveragePooling1D
    averages over the unmasked steps and ends it, as does Flatten.

    Args:
        layers: the layers, in order.
        name: the model name written to files.

    Examples:
        >>> model = KerasSequential([
        ...     jaxembed.Embedding(100, 8, mask_zero=True, rngs=0),
        ...     jaxembed.GlobalAveragePooling1D(),
        ...     nnx.Linear(8, 1, rngs=nnx.Rngs(0)),
        ...     Activation("sigmoid", fused=True),
        ... ])
        >>> model(jnp.array([[5, 7, 0, 0]])).shape
        (1, 1)
    """

    def __init__(self, layers: Sequence[nnx.Module], *, name: str = "sequential"):
        for layer in layers:
            _keras_class(layer)
        self.layers = nnx.List(list(layers))
        self.name = name

    def __call__(self, inputs: jax.typing.ArrayLike) -> jax.Array:
        """Runs the layers in order; ``Dropout`` follows the NNX train/eval mode."""
        x, mask = inputs, None
        for layer in self.layers:
            if isinstance(layer, Embedding):
                mask = layer.compute_mask(x)
                x = layer(x)
            elif isinstance(layer, GlobalAveragePooling1D):
                x, mask = layer(x, mask=mask), None
            elif isinstance(layer, Flatten):
                x, mask = layer(x), None
            else:  # Dense, Dropout and activations keep the mask
                x = layer(x)
        return x
