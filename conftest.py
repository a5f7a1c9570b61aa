"""Shared pytest set-up: Keras runs on JAX, and doctests see the usual imports."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_imports(doctest_namespace):
    import jaxembed

    doctest_namespace.update(jax=jax, jnp=jnp, np=np, nnx=nnx, jaxembed=jaxembed)
