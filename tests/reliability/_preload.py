"""Imported once by the kill tests' fork server: jaxembed and the slow set-up, no JAX threads yet."""

import _savers

_savers.warm_corpus()
