"""Shared pytest set-up: Keras runs on JAX, 8 simulated CPU devices, and doctests see the usual imports."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
# Eight simulated CPU devices for the whole session (tests/test_sharding.py and docs/scaling.md
# place tables on a mesh); set before JAX is imported, keeping any XLA flags already given.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_imports(doctest_namespace):
    import jaxembed

    doctest_namespace.update(jax=jax, jnp=jnp, np=np, nnx=nnx, jaxembed=jaxembed)
